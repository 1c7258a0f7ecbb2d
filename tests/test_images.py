"""htr.images: discovery by content, page ids, loading/normalisation of every input format."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from htr.errors import InputError
from htr.images import MAX_PIXELS, discover, load, open_image, page_id_for, sniff
from htr.types import PageImage, PageRef

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def ref_for(path: Path, index: int = 0, page_id: str = "p") -> PageRef:
    return PageRef(id=page_id, source=str(path), index=index)


def one_page(path: Path) -> PageRef:
    pages, ignored = discover([path])
    assert ignored == []
    assert len(pages) == 1
    return pages[0]


def pixels(page: PageImage) -> np.ndarray:
    with open_image(page) as img:
        return np.asarray(img)


def noise_rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- sniffing / discovery


def test_sniff_magic_bytes():
    assert sniff(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff(b"II*\x00....") == "tiff"
    assert sniff(b"MM\x00*....") == "tiff"
    assert sniff(b"\x00\x00\x00\x0cjP  \r\n\x87\n") == "jp2"
    assert sniff(b"\xff\x4f\xff\x51") == "j2k"
    assert sniff(b"%PDF-1.7\n") == "pdf"
    assert sniff(b"GIF89a") == "gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8L") == "webp"
    assert sniff(b"<?xml version='1.0'?>") is None
    assert sniff(b"") is None


def test_discover_classifies_by_content_and_reports_ignored(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    Image.new("RGB", (8, 8), RED).save(src / "png_named.jpg", "PNG")
    Image.new("RGB", (8, 8), RED).save(src / "jpeg_named.txt", "JPEG")
    (src / "empty.jpg").write_bytes(b"")
    (src / "garbage.tif").write_bytes(b"this is not a tiff at all")
    (src / "notes.txt").write_text("hello")
    (src / "sub" / "page.xml").write_text("<alto/>")
    (src / "meta.json").write_text("{}")
    (src / "README.md").write_text("# x")
    (src / ".DS_Store").write_bytes(b"\x00\x01")
    Image.new("L", (8, 8), 0).save(src / ".hidden" / "secret.png")

    pages, ignored = discover([src])

    assert [p.id for p in pages] == ["empty", "garbage", "jpeg_named", "png_named"]
    assert all(p.index == 0 and p.n_pages == 1 for p in pages)
    assert pages[0].sha256 == hashlib.sha256(b"").hexdigest()
    assert pages[3].sha256 == sha256_file(src / "png_named.jpg")
    assert pages[3].source == str(src / "png_named.jpg")
    assert sorted(ignored) == sorted(
        [
            (str(src / "README.md"), "not an image"),
            (str(src / "meta.json"), "not an image"),
            (str(src / "notes.txt"), "not an image"),
            (str(src / "sub" / "page.xml"), "not an image"),
        ]
    )


def test_discover_missing_source_is_reported(tmp_path):
    pages, ignored = discover([tmp_path / "nope"])
    assert pages == []
    assert ignored == [(str(tmp_path / "nope"), "no such file or directory")]


def test_discover_natural_sorted_and_stable(tmp_path):
    for name in ["10.png", "2.png", "1.png", "b/1.png", "a/3.png"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("L", (4, 4), 9).save(tmp_path / name)
    first, _ = discover([tmp_path])
    second, _ = discover([str(tmp_path)])
    assert [p.id for p in first] == ["1", "2", "10", "a_3", "b_1"]
    assert first == second


def test_same_file_twice_and_overlapping_sources_appear_once(tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "x.png"
    Image.new("L", (4, 4), 9).save(f)
    pages, ignored = discover([tmp_path, f, tmp_path / "d", str(f)])
    assert ignored == []
    assert [(p.id, p.source) for p in pages] == [("d_x", str(f))]


# --------------------------------------------------------------------------- page ids


def test_page_id_for_makes_safe_ids():
    assert page_id_for("0001.jpg") == "0001"
    assert page_id_for("box 1/Lettre à Émile (1).JPG") == "box_1_Lettre_a_Emile_1"
    assert page_id_for("a/b\\c.tif") == "a_b_c"
    assert page_id_for("Straße  №5.v2.png") == "Stra_e_No5.v2"
    assert page_id_for("--weird__name__.png") == "weird_name"
    assert page_id_for("письмо.jpg") == "page"
    long = page_id_for("x" * 300 + ".png")
    assert len(long) == 100 and long.startswith("x" * 91 + "-")


def test_same_name_in_two_folders_of_one_source_does_not_collide(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("L", (4, 4), 1).save(tmp_path / folder / "0001.jpg", "JPEG")
    pages, _ = discover([tmp_path])
    assert [p.id for p in pages] == ["a_0001", "b_0001"]


def test_same_relative_name_under_two_sources_is_disambiguated(tmp_path):
    paths = []
    for folder in ("box1", "box2"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "0001.jpg")
        Image.new("L", (4, 4), 1).save(paths[-1], "JPEG")
    pages, _ = discover([tmp_path / "box1", tmp_path / "box2"])
    expected = ["0001-" + hashlib.sha1(str(p).encode()).hexdigest()[:8] for p in paths]
    assert [p.id for p in pages] == expected
    assert pages[0].id != pages[1].id
    assert discover([tmp_path / "box1", tmp_path / "box2"])[0] == pages


def test_collision_group_gets_path_hash_for_all_members(tmp_path):
    a, b, c = tmp_path / "a b.jpg", tmp_path / "a_b.jpg", tmp_path / "other.jpg"
    for f in (a, b, c):
        Image.new("L", (4, 4), 1).save(f, "JPEG")
    pages, _ = discover([tmp_path])
    ids = {Path(p.source).name: p.id for p in pages}
    assert ids == {
        "a b.jpg": "a_b-" + hashlib.sha1(str(a).encode()).hexdigest()[:8],
        "a_b.jpg": "a_b-" + hashlib.sha1(str(b).encode()).hexdigest()[:8],
        "other.jpg": "other",
    }


def test_directly_given_file_uses_its_stem(tmp_path):
    f = tmp_path / "Café scan.PNG"
    Image.new("L", (4, 4), 1).save(f, "PNG")
    assert one_page(f).id == "Cafe_scan"


# --------------------------------------------------------------------------- formats


def test_jpeg_fast_path_returns_original_file(tmp_path):
    f = tmp_path / "page.jpg"
    Image.new("RGB", (64, 32), (200, 10, 10)).save(f, quality=95, dpi=(300, 300))
    work = tmp_path / "work"
    page = load(one_page(f), work)
    assert page.path == str(f)
    assert (page.width, page.height, page.mode, page.dpi) == (64, 32, "RGB", 300)
    assert not work.exists() or list(work.iterdir()) == []
    px = pixels(page)
    assert px.shape == (32, 64, 3)
    assert np.abs(px.astype(int) - (200, 10, 10)).max() <= 3


def test_png_gray_fast_path_exact_pixels(tmp_path):
    f = tmp_path / "gray.png"
    arr = np.arange(50 * 40, dtype=np.uint32).reshape(40, 50).astype(np.uint8)
    Image.fromarray(arr).save(f)
    page = load(one_page(f), tmp_path / "work")
    assert page.path == str(f)
    assert (page.width, page.height, page.mode, page.dpi) == (50, 40, "L", None)
    assert np.array_equal(pixels(page), arr)


def test_png_named_jpg_loads(tmp_path):
    f = tmp_path / "actually_png.jpg"
    arr = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(arr).save(f, "PNG")
    page = load(one_page(f), tmp_path / "work")
    assert page.path == str(f)
    assert np.array_equal(pixels(page), arr)


def test_tiff_is_normalised_to_png_exactly(tmp_path):
    f = tmp_path / "scan.tif"
    img = noise_rgb(30, 20)
    img.save(f, compression="tiff_lzw", dpi=(400, 400))
    work = tmp_path / "work"
    page = load(one_page(f), work)
    assert page.path == str(work / "scan.png")
    assert (page.width, page.height, page.mode, page.dpi) == (30, 20, "RGB", 400)
    assert np.array_equal(pixels(page), np.asarray(img))
    assert sorted(p.name for p in work.iterdir()) == ["scan.png"]  # no temp file left


def test_multipage_tiff_gives_one_ref_per_page_with_right_content(tmp_path):
    f = tmp_path / "book.tiff"
    frames = [Image.new("RGB", (20 + i, 10), c) for i, c in enumerate((RED, GREEN, BLUE))]
    frames[0].save(f, save_all=True, append_images=frames[1:])
    pages, ignored = discover([f])
    assert ignored == []
    assert [(p.id, p.index, p.n_pages) for p in pages] == [
        ("book_p0001", 0, 3),
        ("book_p0002", 1, 3),
        ("book_p0003", 2, 3),
    ]
    file_hash = hashlib.sha256(f.read_bytes())
    for p in pages:
        h = file_hash.copy()
        h.update(b"#page=%d" % p.index)
        assert p.sha256 == h.hexdigest()
    work = tmp_path / "work"
    for p, colour in zip(pages, (RED, GREEN, BLUE)):
        page = load(p, work)
        assert page.path == str(work / f"{p.id}.png")
        assert (page.width, page.height, page.mode) == (20 + p.index, 10, "RGB")
        px = pixels(page)
        assert (px == colour).all()
    with pytest.raises(InputError, match="page 4 requested but file has 3"):
        load(PageRef(id="x", source=str(f), index=3, n_pages=3), work)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gray_full_range_maps_to_0_255(tmp_path, fmt):
    f = tmp_path / f"g16.{fmt.lower()}"
    arr = np.linspace(0, 65535, 64 * 32).round().astype(np.uint16).reshape(32, 64)
    if fmt == "PNG":
        Image.fromarray(arr).save(f)
    else:
        tifffile.imwrite(f, arr)
    page = load(one_page(f), tmp_path / "work")
    assert page.mode == "L"
    px = pixels(page)
    assert px.dtype == np.uint8
    assert (int(px.min()), int(px.max())) == (0, 255)
    expected = np.floor(arr.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    assert np.abs(px.astype(int) - expected).max() <= 1
    assert (np.diff(px.astype(int).ravel()) >= 0).all()  # monotonic, no clipping


def test_16bit_gray_partial_range_is_stretched(tmp_path):
    f = tmp_path / "g12.tif"
    arr = np.tile(np.array([1000, 1000, 3000, 5000], dtype=np.uint16), (4, 1))
    tifffile.imwrite(f, arr.astype(">u2"))  # big-endian: Pillow mode I;16B
    px = pixels(load(one_page(f), tmp_path / "work"))
    assert px[0].tolist() == [0, 0, 128, 255]


def test_16bit_rgb_tiff_to_8bit_rgb(tmp_path):
    f = tmp_path / "rgb16.tif"
    arr = np.random.default_rng(2).integers(0, 65536, (12, 16, 3)).astype(np.uint16)
    tifffile.imwrite(f, arr, photometric="rgb")
    page = load(one_page(f), tmp_path / "work")
    assert page.mode == "RGB"
    assert np.array_equal(pixels(page), (arr >> 8).astype(np.uint8))


def test_float_rgb_tiff_pillow_cannot_read_goes_through_tifffile(tmp_path):
    f = tmp_path / "rgbf.tif"
    arr = np.zeros((6, 8, 3), dtype=np.float32)
    arr[:, :4] = (1.0, 0.0, 0.0)
    arr[:, 4:] = (0.0, 0.0, 0.5)
    tifffile.imwrite(f, arr, photometric="rgb")
    with pytest.raises(Exception):
        Image.open(f)  # precondition: Pillow cannot identify it
    page = load(one_page(f), tmp_path / "work")
    assert (page.mode, page.width, page.height) == ("RGB", 8, 6)
    px = pixels(page)
    assert (px[:, :4] == RED).all()
    assert (px[:, 4:] == (0, 0, 128)).all()


def test_cmyk_jpeg_to_rgb_colours(tmp_path):
    f = tmp_path / "cmyk.jpg"
    cmyk = Image.new("CMYK", (40, 40), (0, 0, 0, 0))
    inks = {(0, 0): (255, 0, 0, 0), (20, 0): (0, 255, 0, 0), (0, 20): (0, 0, 255, 0), (20, 20): (0, 0, 0, 255)}
    for (x, y), ink in inks.items():
        cmyk.paste(ink, (x, y, x + 20, y + 20))
    cmyk.save(f, quality=95)
    page = load(one_page(f), tmp_path / "work")
    assert page.path != str(f)
    assert page.mode == "RGB"
    px = pixels(page).astype(int)
    expected = {(0, 0): (0, 255, 255), (20, 0): (255, 0, 255), (0, 20): (255, 255, 0), (20, 20): (0, 0, 0)}
    for (x, y), rgb in expected.items():
        assert np.abs(px[y + 10, x + 10] - rgb).max() <= 8, ((x, y), px[y + 10, x + 10])


@pytest.mark.parametrize("ext", ["jp2", "j2k"])
def test_jpeg2000(tmp_path, ext):
    f = tmp_path / f"scan.{ext}"
    img = noise_rgb(24, 16, seed=3)
    img.save(f)  # Pillow's default JPEG 2000 encoding is lossless
    assert sniff(f.read_bytes()[:1024]) == ext
    page = load(one_page(f), tmp_path / "work")
    assert (page.mode, page.width, page.height) == ("RGB", 24, 16)
    assert page.path.endswith("scan.png")
    assert np.array_equal(pixels(page), np.asarray(img))


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "WEBP"])
def test_bmp_gif_webp(tmp_path, fmt):
    f = tmp_path / f"img.{fmt.lower()}"
    img = Image.new("RGB", (10, 6), BLUE)
    img.paste(RED, (0, 0, 5, 6))
    img.save(f, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    page = load(one_page(f), tmp_path / "work")
    assert (page.mode, page.width, page.height) == ("RGB", 10, 6)
    px = pixels(page)
    assert (px[:, :5] == RED).all() and (px[:, 5:] == BLUE).all()


def test_rgba_composited_on_white(tmp_path):
    f = tmp_path / "alpha.png"
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[..., 0] = 255  # red
    arr[..., 3] = [0, 255, 128]  # transparent, opaque, half
    Image.fromarray(arr, "RGBA").save(f)
    page = load(one_page(f), tmp_path / "work")
    assert page.mode == "RGB"
    px = pixels(page).astype(int)
    assert px[0, 0].tolist() == [255, 255, 255]
    assert px[0, 1].tolist() == [255, 0, 0]
    assert px[0, 2, 0] == 255 and abs(px[0, 2, 1] - 127) <= 1 and abs(px[0, 2, 2] - 127) <= 1


def test_la_composited_on_white_stays_gray(tmp_path):
    f = tmp_path / "la.png"
    arr = np.zeros((1, 2, 2), dtype=np.uint8)
    arr[0, :, 1] = [0, 255]
    Image.fromarray(arr, "LA").save(f)
    page = load(one_page(f), tmp_path / "work")
    assert page.mode == "L"
    assert pixels(page).tolist() == [[255, 0]]


def test_bilevel_becomes_l(tmp_path):
    f = tmp_path / "bw.png"
    img = Image.new("1", (8, 2), 1)
    img.paste(0, (0, 0, 4, 2))
    img.save(f)
    page = load(one_page(f), tmp_path / "work")
    assert page.mode == "L" and page.path != str(f)
    assert pixels(page).tolist() == [[0, 0, 0, 0, 255, 255, 255, 255]] * 2


def test_exif_orientation_6_rotates_and_moves_corner(tmp_path):
    f = tmp_path / "rot.jpg"
    img = Image.new("RGB", (40, 20), WHITE)
    img.paste(RED, (0, 0, 8, 8))  # stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(f, quality=95, exif=exif)
    page = load(one_page(f), tmp_path / "work")
    assert page.path != str(f)
    assert (page.width, page.height) == (20, 40)
    px = pixels(page).astype(int)
    assert np.abs(px[3, 16] - RED).max() <= 40  # now top-right
    assert np.abs(px[3, 3] - WHITE).max() <= 40
    assert np.abs(px[36, 3] - WHITE).max() <= 40


def test_tiff_orientation_tag_is_applied(tmp_path):
    f = tmp_path / "rot.tif"
    img = Image.new("RGB", (40, 20), WHITE)
    img.paste(RED, (0, 0, 8, 8))
    img.save(f, tiffinfo={0x0112: 6})
    page = load(one_page(f), tmp_path / "work")
    assert (page.width, page.height) == (20, 40)
    px = pixels(page)
    assert tuple(px[3, 16]) == RED and tuple(px[3, 3]) == WHITE


def test_tifffile_fallback_applies_orientation(tmp_path):
    f = tmp_path / "rotf.tif"
    arr = np.ones((20, 40, 3), dtype=np.float32)
    arr[:8, :8] = (1.0, 0.0, 0.0)
    tifffile.imwrite(f, arr, photometric="rgb", extratags=[(0x0112, "H", 1, 6, True)])
    page = load(one_page(f), tmp_path / "work")
    assert (page.width, page.height) == (20, 40)
    px = pixels(page)
    assert tuple(px[3, 16]) == RED and tuple(px[3, 3]) == WHITE


def test_pdf_two_pages_rendered_at_dpi(tmp_path):
    f = tmp_path / "doc.pdf"
    p1, p2 = Image.new("RGB", (200, 100), RED), Image.new("RGB", (200, 100), BLUE)
    p1.save(f, "PDF", save_all=True, append_images=[p2], resolution=100)  # 2 x 1 inch pages
    pages, ignored = discover([f])
    assert ignored == []
    assert [(p.id, p.index, p.n_pages) for p in pages] == [("doc_p0001", 0, 2), ("doc_p0002", 1, 2)]
    work = tmp_path / "work"
    for p, colour in zip(pages, (RED, BLUE)):
        page = load(p, work, pdf_dpi=150)
        assert (page.width, page.height, page.dpi, page.mode) == (300, 150, 150, "RGB")
        assert page.path == str(work / f"{p.id}.png")
        assert np.abs(pixels(page)[75, 150].astype(int) - colour).max() <= 6
    with pytest.raises(InputError, match="page 3 requested but file has 2") as err:
        load(PageRef(id="doc_p0003", source=str(f), index=2, n_pages=2), work)
    assert str(f) in str(err.value)


# --------------------------------------------------------------------------- failures


def test_truncated_jpeg_raises_input_error_naming_file(tmp_path):
    f = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    noise_rgb(200, 200, seed=4).save(buf, "JPEG", quality=90)
    f.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    ref = one_page(f)
    with pytest.raises(InputError) as err:
        load(ref, tmp_path / "work")
    assert err.value.path == str(f)
    assert err.value.page_id == "cut"
    assert err.value.message.startswith("truncated or corrupt JPEG: ")
    assert str(err.value).startswith(f"{f}: truncated or corrupt JPEG")


def test_empty_file_is_a_page_that_fails_on_load(tmp_path):
    f = tmp_path / "empty.jpg"
    f.write_bytes(b"")
    ref = one_page(f)
    assert ref.id == "empty"
    with pytest.raises(InputError) as err:
        load(ref, tmp_path / "work")
    assert err.value.message == "empty file (0 bytes)"
    assert str(err.value) == f"{f}: empty file (0 bytes)"


def test_garbage_with_image_extension_fails_clearly(tmp_path):
    f = tmp_path / "junk.png"
    f.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InputError) as err:
        load(one_page(f), tmp_path / "work")
    assert err.value.message == "cannot identify image format"


def test_garbage_pdf_fails_clearly(tmp_path):
    f = tmp_path / "bad.pdf"
    f.write_bytes(b"%PDF-1.4\nnothing useful here\n")
    with pytest.raises(InputError) as err:
        load(one_page(f), tmp_path / "work")
    assert err.value.message.startswith("cannot open PDF: ")


def test_missing_file_fails_clearly(tmp_path):
    with pytest.raises(InputError) as err:
        load(ref_for(tmp_path / "gone.jpg"), tmp_path / "work")
    assert err.value.message == "cannot read file: No such file or directory"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    )


def test_image_over_pixel_limit_is_refused_with_size(tmp_path):
    f = tmp_path / "huge.png"
    f.write_bytes(_png_header_only(40_000, 30_000))  # 1.2 gigapixels, > MAX_PIXELS
    assert 40_000 * 30_000 > MAX_PIXELS
    # Pillow's own limit is process-global and other libraries move it (ocrd_utils sets 1.6 GP, kraken's
    # CLI 400 MP): the project's limit must hold whatever it is, with one clear error and no Pillow warning.
    for pillow_limit in (None, 20_000**2, 40_000**2):
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, pillow_limit
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with pytest.raises(InputError) as err:
                    load(one_page(f), tmp_path / "work")
        finally:
            Image.MAX_IMAGE_PIXELS = saved
        assert err.value.message == "image too large: 40000x30000 = 1200 megapixels (limit 1000)"
        assert str(f) in str(err.value)


def test_index_beyond_single_page_file(tmp_path):
    f = tmp_path / "one.png"
    Image.new("L", (4, 4)).save(f)
    with pytest.raises(InputError, match="page 2 requested but file has 1"):
        load(ref_for(f, index=1), tmp_path / "work")


def test_open_image_on_missing_file_raises_input_error(tmp_path):
    page = PageImage(ref=ref_for(tmp_path / "x.png"), path=str(tmp_path / "x.png"), width=1, height=1)
    with pytest.raises(InputError):
        open_image(page)


# --------------------------------------------------------------------------- big scans

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from htr.images import discover, load
    pages, _ = discover([sys.argv[1]])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    page = load(pages[0], Path(sys.argv[2]))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"increase": (after - before) * 1024, "page": page.to_dict()}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_250_megapixel_page_loads_with_bounded_memory(tmp_path, fmt):
    w, h = 16000, 15625  # 250 megapixels, 250 MB as 8-bit L
    f = tmp_path / f"big.{fmt.lower()}"
    row = (np.arange(w) % 251).astype(np.uint8)
    arr = np.broadcast_to(row, (h, w))
    img = Image.fromarray(np.ascontiguousarray(arr))
    del arr
    img.save(f, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    img.close()
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(f), str(work)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    page = out["page"]
    assert (page["width"], page["height"], page["mode"]) == (w, h, "L")
    assert page["path"] == (str(f) if fmt == "PNG" else str(work / "big.png"))
    assert out["increase"] < 3 * w * h, out["increase"]
    if fmt == "TIFF":
        with Image.open(page["path"]) as im:
            assert im.size == (w, h)
            assert im.crop((0, h - 1, 300, h)).tobytes() == row[:300].tobytes()


def test_hash_cache_skips_rehash_of_unchanged_files_and_sees_changes(tmp_path):
    """A re-run over an unchanged collection reuses the cached hashes; a changed file is hashed again."""
    import os

    from htr.images import discover

    src = tmp_path / "src"
    src.mkdir()
    a, b = src / "a.png", src / "b.png"
    Image.new("L", (20, 10), 0).save(a)
    Image.new("L", (20, 10), 255).save(b)
    cache: dict = {}
    first, _ = discover([src], cache)
    assert set(cache) == {os.path.realpath(a), os.path.realpath(b)}
    cache[os.path.realpath(b)]["shas"] = ["f" * 64]  # proves the cached value is used, not a re-read
    second, _ = discover([src], cache)
    assert [p.sha256 for p in second] == [first[0].sha256, "f" * 64]
    Image.new("L", (20, 11), 128).save(b)  # size and mtime change
    third, _ = discover([src], cache)
    assert third[1].sha256 == hashlib.sha256(b.read_bytes()).hexdigest() != first[1].sha256
