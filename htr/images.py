"""Find and open page images.

`discover` turns files and folders into `PageRef`s (one per page, multi-page TIFF/PDF
expanded), deciding by content (magic bytes), not extension. `load` decodes one page,
applies EXIF orientation, normalises it to 8-bit L or RGB and returns a `PageImage`
pointing at a file the next stages can open with `open_image`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from htr import atomic
from htr.errors import DiskFull, InputError, is_disk_full
from htr.types import PageImage, PageRef

MAX_PIXELS = 1_000_000_000
"""Largest page (width × height) we decode; Pillow's bomb limit is raised to this."""

MAX_ID_LEN = 100
"""Longest page id before the suffixes (`-<hash>`, `_p0001`); longer ids are shortened + hashed."""

_CHUNK = 1 << 20  # hashing chunk: 1 MiB
_HEAD = 1024  # bytes read to sniff the format (PDF allows junk before %PDF within 1024)
_STRIP_PIXELS = 1 << 22  # pixels per strip when rescaling high bit-depth images with numpy

IMAGE_EXTS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .tif .tiff .jp2 .j2k .j2c .jpc .jpf .jpx .pdf .bmp .dib .gif .webp".split()
)
_EXT_KIND = {
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".jfif"), "jpeg"),
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    **dict.fromkeys((".jp2", ".jpf", ".jpx"), "jp2"),
    **dict.fromkeys((".j2k", ".j2c", ".jpc"), "j2k"),
    ".pdf": "pdf",
    ".bmp": "bmp",
    ".dib": "bmp",
    ".gif": "gif",
    ".webp": "webp",
}
_FORMAT_NAMES = {"JPEG2000": "JPEG 2000"}

# EXIF orientation -> transposition (same table as PIL.ImageOps.exif_transpose).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# Pillow warns about harmless damaged EXIF/TIFF tags that real scans carry (cremma-mss-19 has them):
# the page still decodes; the warnings would only bury the progress bar.
warnings.filterwarnings(
    "ignore", message=r"(Tag data larger than file|Possibly corrupt EXIF|Corrupt EXIF data)", category=UserWarning
)


def _raise_pixel_limit() -> None:
    """Pillow's limit is process-global and other libraries move it (kraken's CLI: 400 MP, ocrd_utils:
    1.6 GP): set the project's limit again before each decode."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# --------------------------------------------------------------------------- sniffing


def sniff(head: bytes) -> str | None:
    """Format of a file from its first bytes: jpeg, png, tiff, jp2, j2k, pdf, bmp, gif, webp or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "jp2"
    if head.startswith(b"\xff\x4f\xff\x51"):
        return "j2k"
    if b"%PDF-" in head[:_HEAD]:
        return "pdf"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


# --------------------------------------------------------------------------- page ids


def page_id_for(rel_path: str) -> str:
    """Safe id for a path relative to its source folder (or a bare file name).

    Extension dropped, separators -> "_", accents stripped, anything outside
    [A-Za-z0-9._-] -> "_", repeated "_" collapsed, leading/trailing "._-" removed.
    Never empty ("page"); ids longer than MAX_ID_LEN are cut and get a hash suffix.
    """
    parts = [p for p in re.split(r"[\\/]+", rel_path) if p not in ("", ".")]
    if parts:
        parts[-1] = PurePosixPath(parts[-1]).stem
    text = unicodedata.normalize("NFKD", "_".join(parts))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    text = re.sub(r"_{2,}", "_", text).strip("._-") or "page"
    if len(text) > MAX_ID_LEN:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        text = f"{text[: MAX_ID_LEN - 9].rstrip('._-')}-{digest}"
    return text


def _path_hash(source: str, salt: str = "") -> str:
    return hashlib.sha1(os.fsencode(source) + salt.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- discovery


def _natural_key(rel: str) -> tuple[Any, ...]:
    parts = re.split(r"(\d+)", rel)
    return (tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), rel)


def _walk(top: Path, ignored: list[tuple[str, str]]) -> list[tuple[Path, str]]:
    """Non-hidden entries under `top` (recursive), as (path, posix path relative to top), sorted."""

    def onerror(err: OSError) -> None:
        ignored.append((str(err.filename or top), f"cannot read folder: {err.strerror or err}"))

    out: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath, name)
                out.append((path, path.relative_to(top).as_posix()))
    out.sort(key=lambda item: _natural_key(item[1]))
    return out


def _count_pages(path: Path, kind: str) -> int:
    """Pages in a TIFF or PDF (cheap: no decoding); 1 when unknown or unreadable."""
    try:
        if kind == "pdf":
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(str(path))
            try:
                return max(1, len(doc))
            finally:
                doc.close()
        if kind == "tiff":
            try:
                with Image.open(path) as img:
                    return max(1, int(getattr(img, "n_frames", 1)))
            except Exception:  # Pillow cannot open every TIFF (its decoders raise anything): tifffile may
                import tifffile

                with tifffile.TiffFile(path) as tif:
                    return max(1, len(tif.pages))
    except Exception:  # only a count: an unreadable file is one page, and `load` says why it fails
        pass
    return 1


def _classify(path: Path) -> tuple[str | None, str | None, Any]:
    """(kind, ignore reason, sha256 object) for one file; kind None and a reason when ignored."""
    ext = path.suffix.lower()
    by_ext = _EXT_KIND.get(ext)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file", None
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            kind = sniff(head)
            if kind is None and by_ext is None:
                return None, "not an image", None
            digest.update(head)
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError as e:
        if by_ext is None:
            return None, f"cannot read file: {e.strerror or e}", None
        return by_ext, None, None  # an image by name: load() will report why it cannot be read
    return kind or by_ext, None, digest


def discover(
    sources: Sequence[str | Path],
    cache: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[PageRef], list[tuple[str, str]]]:
    """Pages found in `sources` (files and/or folders, searched recursively) and ignored files.

    Folders are walked in natural sorted order, hidden files/folders skipped. Files are
    recognised by content; a file with an image/PDF extension but unreadable content is
    still a page (it fails at `load`). Multi-page TIFF/PDF give one `PageRef` per page.
    A file reached twice (repeated or overlapping sources) is listed once.
    Returns (pages, [(path, reason), ...]).

    `cache` (path -> size, mtime_ns, kind, page count, page hashes) is read and updated
    so that a re-run over a large unchanged collection does not read every file again;
    a file whose size or mtime changed is hashed again. `progress(files_seen, files)` is called
    as files are classified and hashed.
    """
    ignored: list[tuple[str, str]] = []
    candidates: list[tuple[Path, str]] = []
    for src in sources:
        top = Path(os.path.abspath(os.fspath(src)))
        if top.is_dir():
            candidates.extend(_walk(top, ignored))
        elif top.exists() or top.is_symlink():
            candidates.append((top, top.name))
        else:
            ignored.append((str(top), "no such file or directory"))

    seen: set[str] = set()
    files: list[dict[str, Any]] = []
    for i, (path, rel) in enumerate(candidates):
        if progress is not None:
            progress(i, len(candidates))
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        hit = _cache_hit(cache, path)
        if hit is not None:
            files.append(
                {"source": str(path), "base": page_id_for(rel), "n": hit["n"], "digest": None, "shas": hit["shas"]}
            )
            continue
        kind, reason, digest = _classify(path)
        if kind is None:
            ignored.append((str(path), reason or "not an image"))
            continue
        n = _count_pages(path, kind) if kind in ("tiff", "pdf") and digest is not None else 1
        files.append({"source": str(path), "base": page_id_for(rel), "n": n, "digest": digest})

    _disambiguate(files)

    pages: list[PageRef] = []
    for f in files:
        for index in range(f["n"]):
            sha = ""
            if "shas" in f:
                sha = f["shas"][index]
            elif f["digest"] is not None:
                h = f["digest"].copy()
                if f["n"] > 1:
                    h.update(b"#page=%d" % index)
                sha = h.hexdigest()
            pid = f["base"] if f["n"] == 1 else f"{f['base']}_p{index + 1:04d}"
            pages.append(PageRef(id=pid, source=f["source"], index=index, sha256=sha, n_pages=f["n"]))
    if cache is not None:
        for f in files:
            if f.get("digest") is not None or "shas" in f:
                _cache_store(cache, Path(f["source"]), f["n"], [p.sha256 for p in pages if p.source == f["source"]])
    return pages, ignored


def _cache_hit(cache: dict[str, Any] | None, path: Path) -> dict[str, Any] | None:
    if not cache:
        return None
    entry = cache.get(os.path.realpath(path))
    try:
        st = os.stat(path)
    except OSError:
        return None
    if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns and entry.get("shas"):
        return entry
    return None


def _cache_store(cache: dict[str, Any], path: Path, n: int, shas: list[str]) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    if len(shas) == n and all(shas):
        cache[os.path.realpath(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "n": n, "shas": shas}


def _page_ids(f: dict[str, Any]) -> list[str]:
    return [f["base"]] if f["n"] == 1 else [f"{f['base']}_p{i + 1:04d}" for i in range(f["n"])]


def _disambiguate(files: list[dict[str, Any]]) -> None:
    """Append `-<sha1(source)[:8]>` to every file whose base or page id clashes (case-insensitively)."""
    for round_ in range(5):
        owners: dict[str, set[int]] = defaultdict(set)
        for i, f in enumerate(files):
            owners["base:" + f["base"].casefold()].add(i)
            for pid in _page_ids(f):
                owners["id:" + pid.casefold()].add(i)
        clash = set().union(*(s for s in owners.values() if len(s) > 1))
        if not clash:
            return
        for i in clash:
            salt = "" if round_ == 0 else str(round_)
            files[i]["base"] = f"{files[i]['base']}-{_path_hash(files[i]['source'], salt)}"


# --------------------------------------------------------------------------- loading


def _too_large(w: int, h: int) -> str:
    return f"image too large: {w}x{h} = {w * h / 1e6:.0f} megapixels (limit {MAX_PIXELS / 1e6:.0f})"


def _dpi_of(info: dict[str | tuple[int, int], Any]) -> int | None:
    """The horizontal resolution in Pillow's `img.info` (keys: names, or PNG chunk tuples), if any."""
    dpi = info.get("dpi")
    if dpi is None:
        return None
    try:
        value = float(dpi[0] if isinstance(dpi, (tuple, list)) else dpi)
    except (TypeError, ValueError, IndexError):
        return None
    return int(round(value)) if value >= 1.5 else None


def _strips(height: int, width: int) -> Iterator[tuple[int, int]]:
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for y in range(0, height, rows):
        yield y, min(height, y + rows)


def _scale_to_u8(get: Any, height: int, width: int, channels: int) -> np.ndarray:
    """Rescale a high bit-depth image read strip by strip (`get(y0, y1)` -> array) to uint8.

    The real range (min..max over all samples, NaN ignored) maps to 0..255.
    """
    lo, hi = np.inf, -np.inf
    for y0, y1 in _strips(height, width):
        a = get(y0, y1)
        if a.size:
            lo = min(lo, float(np.nanmin(a)) if a.dtype.kind == "f" else float(a.min()))
            hi = max(hi, float(np.nanmax(a)) if a.dtype.kind == "f" else float(a.max()))
    shape = (height, width) if channels == 1 else (height, width, channels)
    out = np.empty(shape, dtype=np.uint8)
    if not np.isfinite(lo) or not np.isfinite(hi):
        out.fill(0)
        return out
    span = hi - lo
    for y0, y1 in _strips(height, width):
        a = get(y0, y1).astype(np.float32)
        if span > 0:
            a -= lo
            a *= 255.0 / span
        else:  # constant image: keep it dark or light
            a.fill(255.0 if lo > 0 else 0.0)
        np.nan_to_num(a, copy=False, nan=0.0)
        a += 0.5
        np.clip(a, 0, 255, out=a)
        out[y0:y1] = a.astype(np.uint8)
    return out


def _gray_high_to_l(img: Image.Image) -> Image.Image:
    """I;16*/I/F image -> L, scaling the real value range to 0..255."""
    w, h = img.size
    out = _scale_to_u8(lambda y0, y1: np.asarray(img.crop((0, y0, w, y1))), h, w, 1)
    return Image.fromarray(out)


def _composite_on_white(img: Image.Image) -> Image.Image:
    """LA/RGBA image -> L/RGB with alpha composited on white."""
    mode = "L" if img.mode == "LA" else "RGB"
    base = Image.new(mode, img.size, 255 if mode == "L" else (255, 255, 255))
    base.paste(img, (0, 0), img)
    return base


def _normalise(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit L or RGB, releasing the input as soon as possible."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" not in img.info:
        return img
    if mode == "1":
        out = img.convert("L")
    elif mode.startswith("I") or mode == "F":
        out = _gray_high_to_l(img)
    elif mode in ("LA", "RGBA"):
        out = _composite_on_white(img)
    elif mode == "La":
        out = img.convert("L")
    elif mode in ("P", "PA", "L", "RGB"):
        has_alpha = mode == "PA" or "transparency" in img.info
        if has_alpha:
            tmp = img.convert("LA" if mode == "L" else "RGBA")
            img.close()
            out = _composite_on_white(tmp)
            tmp.close()
        else:
            out = img.convert("RGB")
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, RGBa, ...
        out = img.convert("RGB")
    if out is not img:
        img.close()
    return out


def _open_pdf_page(path: Path, index: int, dpi: int) -> Image.Image:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise _Fail("encrypted PDF (password required)") from None
        raise _Fail(f"cannot open PDF: {msg}") from None
    try:
        n = len(doc)
        if index >= n:
            raise _Fail(f"page {index + 1} requested but file has {n}")
        page = doc[index]
        try:
            wpt, hpt = page.get_size()
            scale = dpi / 72.0
            w, h = int(round(wpt * scale)), int(round(hpt * scale))
            if w * h > MAX_PIXELS:
                raise _Fail(_too_large(w, h) + f" at {dpi} dpi")
            if w <= 0 or h <= 0:
                raise _Fail(f"PDF page {index + 1} has no area")
            bitmap = page.render(scale=scale, rev_byteorder=True)
            try:
                img = bitmap.to_pil()
                if img.mode != "RGB" or getattr(img, "readonly", 0):
                    img = img.convert("RGB")  # own the pixels before the bitmap is freed
            finally:
                bitmap.close()
            return img
        finally:
            page.close()
    except pdfium.PdfiumError as e:
        raise _Fail(f"cannot render PDF page {index + 1}: {e}") from None
    finally:
        doc.close()


def _tiff_via_tifffile(path: Path, index: int) -> Image.Image:
    """TIFF layouts Pillow cannot decode (e.g. float or unusual 16-bit RGB) -> L or RGB."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if index >= len(tif.pages):
            raise _Fail(f"page {index + 1} requested but file has {len(tif.pages)}")
        page = tif.pages[index]
        assert isinstance(page, tifffile.TiffPage)  # a TiffFrame only when pages.useframes is set
        arr = page.asarray()
        photometric = int(page.photometric)
        orientation = int(page.tags["Orientation"].value) if "Orientation" in page.tags else 1
        if arr.ndim == 3 and int(page.planarconfig) == 2:
            arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise _Fail(f"unsupported TIFF layout: shape {arr.shape}")
    h, w = arr.shape[:2]
    if w * h > MAX_PIXELS:
        raise _Fail(_too_large(w, h))
    alpha = None
    if arr.ndim == 3:
        c = arr.shape[-1]
        if photometric == 5 and c >= 4:  # separated (CMYK)
            cmyk = _scale_to_u8(lambda y0, y1: arr[y0:y1, :, :4], h, w, 4)  # noqa: F821 - called before the `del arr` below
            img = Image.fromarray(cmyk, "CMYK").convert("RGB")
            return _orient(img, orientation)
        if c == 2:
            color, alpha = arr[..., 0], arr[..., 1]
        elif c >= 3:
            color, alpha = arr[..., :3], (arr[..., 3] if c >= 4 else None)
        else:
            raise _Fail(f"unsupported TIFF layout: {c} samples per pixel")
    else:
        color = arr
    channels = 1 if color.ndim == 2 else 3
    out = _scale_to_u8(lambda y0, y1: color[y0:y1], h, w, channels)  # noqa: F821 - called before the `del color` below
    if photometric == 0 and channels == 1:  # min-is-white
        np.subtract(255, out, out=out)
    if alpha is not None:
        amax = 1.0 if alpha.dtype.kind == "f" else float(np.iinfo(alpha.dtype).max)
        for y0, y1 in _strips(h, w):
            a = np.clip(alpha[y0:y1].astype(np.float32) / amax, 0, 1)
            if channels == 3:
                a = a[..., None]
            blk = out[y0:y1].astype(np.float32)
            out[y0:y1] = (blk * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    del arr, color, alpha
    return _orient(Image.fromarray(out), orientation)


def _orient(img: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENT.get(orientation)
    if method is None:
        return img
    out = img.transpose(method)
    img.close()
    return out


class _Fail(Exception):
    """Internal: a human reason, turned into InputError by `load`."""


def _open_raster(path: Path, kind: str | None, index: int) -> tuple[Image.Image, int | None, bool]:
    """Decode frame `index` of a raster file -> (oriented image, dpi, fast-path eligible)."""
    fmt = (kind or "image").upper()
    try:
        with warnings.catch_warnings():  # between 1x and 2x the limit: the size check below says it clearly
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError:
        if kind == "tiff":
            return _tiff_fallback(path, index, None), None, False
        raise _Fail("cannot identify image format") from None
    except Image.DecompressionBombError as e:
        raise _Fail(f"image too large: {e}") from None
    except OSError as e:
        raise _Fail(f"cannot read file: {e.strerror or e}") from None
    except (SyntaxError, ValueError, EOFError) as e:
        raise _Fail(f"corrupt {fmt} header: {e}") from None
    try:
        fmt = _FORMAT_NAMES.get(img.format or "", img.format or fmt)
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        if index:
            if img.format != "TIFF" or index >= n_frames:
                raise _Fail(f"page {index + 1} requested but file has {n_frames if img.format == 'TIFF' else 1}")
            try:
                img.seek(index)
            except EOFError:
                raise _Fail(f"page {index + 1} requested but file has {index}") from None
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise _Fail(_too_large(w, h))
        dpi = _dpi_of(img.info)
        try:
            orientation = img.getexif().get(0x0112, 1)
        except Exception:  # unreadable EXIF: treat the image as upright
            orientation = 1
        fast = (
            img.format in ("JPEG", "PNG")
            and img.mode in ("L", "RGB")
            and "transparency" not in img.info
            and n_frames == 1
            and index == 0
            and orientation not in _ORIENT
        )
        try:
            img.load()  # full decode: truncated or corrupt data fails here
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as e:
            if kind == "tiff" and img.format == "TIFF":
                img.close()
                return _tiff_fallback(path, index, f"truncated or corrupt TIFF: {e}"), dpi, False
            raise _Fail(f"truncated or corrupt {fmt}: {e}") from None
        if orientation in _ORIENT:
            ImageOps.exif_transpose(img, in_place=True)
        return img, dpi, fast
    except BaseException:
        img.close()
        raise


def _tiff_fallback(path: Path, index: int, pillow_reason: str | None) -> Image.Image:
    try:
        return _tiff_via_tifffile(path, index)
    except _Fail:
        raise
    except MemoryError:
        raise
    except Exception as e:  # tifffile/imagecodecs raise anything on a damaged file: one reason for the page
        raise _Fail(pillow_reason or f"cannot decode TIFF: {e}") from None


def _save_png_atomic(img: Image.Image, target: Path, dpi: int | None) -> None:
    """A work file: atomic (temp name `.<name>.tmp-*`, swept after a crash), not fsynced."""
    params: dict[str, Any] = {"compress_level": 1}
    if dpi:
        params["dpi"] = (dpi, dpi)
    with atomic.replacing(target, durable=False) as fh:
        img.save(fh, "PNG", **params)


def load(ref: PageRef, work_dir: Path, pdf_dpi: int = 300) -> PageImage:
    """Decode page `ref` and return it as an 8-bit L or RGB file.

    JPEG/PNG files already L/RGB, single-frame and upright are used as they are (fast
    path). Anything else (TIFF, JPEG 2000, PDF pages, EXIF-rotated, CMYK, 16-bit, alpha,
    palette...) is normalised and written atomically to `work_dir/<ref.id>.png`.
    Raises InputError with a short reason for any unreadable input.
    """
    _raise_pixel_limit()
    path = Path(ref.source)
    try:
        try:
            st = os.stat(path)
        except OSError as e:
            raise _Fail(f"cannot read file: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise _Fail("not a regular file")
        if st.st_size == 0:
            raise _Fail("empty file (0 bytes)")
        try:
            with open(path, "rb") as fh:
                kind = sniff(fh.read(_HEAD))
        except OSError as e:
            raise _Fail(f"cannot read file: {e.strerror or e}") from None
        kind = kind or _EXT_KIND.get(path.suffix.lower())

        dpi: int | None
        if kind == "pdf":
            img, dpi, fast = _open_pdf_page(path, ref.index, pdf_dpi), pdf_dpi, False
        else:
            img, dpi, fast = _open_raster(path, kind, ref.index)

        if fast:
            page = PageImage(ref=ref, path=str(path), width=img.width, height=img.height, dpi=dpi, mode=img.mode)
            img.close()
            return page
        try:
            img = _normalise(img)
            target = Path(os.path.abspath(work_dir)) / f"{ref.id}.png"
            try:
                _save_png_atomic(img, target, dpi)
            except OSError as e:
                if is_disk_full(e):  # not the image's fault: the run must know the disk is full
                    raise DiskFull(f"cannot write normalised image: {e.strerror}", path=str(target)) from e
                raise _Fail(f"cannot write normalised image {target}: {e.strerror or e}") from None
            return PageImage(ref=ref, path=str(target), width=img.width, height=img.height, dpi=dpi, mode=img.mode)
        finally:
            img.close()
    except _Fail as e:
        raise InputError(str(e), path=ref.source, page_id=ref.id) from None
    except (InputError, DiskFull):
        raise
    except MemoryError:
        raise
    except Exception as e:  # last resort: never let a raw decoder error escape
        raise InputError(f"cannot read image: {type(e).__name__}: {e}", path=ref.source, page_id=ref.id) from None


def open_image(page: PageImage) -> Image.Image:
    """Open (and decode) the normalised page file: an 8-bit L or RGB Pillow image."""
    _raise_pixel_limit()
    img: Image.Image
    try:
        img = Image.open(page.path)
        try:
            img.load()
        except BaseException:
            img.close()
            raise
    except MemoryError:
        raise
    except Exception as e:  # decoders raise anything: the page fails with InputError naming the file
        raise InputError(f"cannot open page image: {e}", path=page.path, page_id=page.ref.id) from None
    if img.mode not in ("L", "RGB"):
        img = _normalise(img)
    return img
