"""`--seg-engine fast` (htr.fastseg): Kraken's segmentation post-processing rebuilt, checked against Kraken's own
functions on synthetic heatmaps and, end to end, on real pages of three datasets of ../shared/gt."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cli.main import parser
from cli.options import settings_from
from htr import fastseg
from htr.config import RunSettings, make_settings


def _heatmaps(seed: int = 0, shape: tuple[int, int] = (420, 640)) -> np.ndarray:
    """(start separators, end separators, baselines) as a BLLA network draws them: blurred, slightly wavy
    baselines of a page of prose, a separator blob at each end."""
    rng = np.random.default_rng(seed)
    st, end, bl = (np.zeros(shape, np.float32) for _ in range(3))
    for k, y in enumerate(range(50, shape[0] - 30, 45)):
        x0, x1 = int(rng.integers(20, 80)), int(rng.integers(shape[1] - 150, shape[1] - 20))
        xs = np.linspace(x0, x1, 12)
        ys = y + 4 * np.sin(xs / (60 + 10 * k)) + rng.normal(0, 0.7, xs.size)
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(bl, [pts], False, 1.0, 3)
        cv2.circle(st, (x0, int(ys[0])), 6, 1.0, -1)
        cv2.circle(end, (x1, int(ys[-1])), 6, 1.0, -1)
    return np.stack([cv2.GaussianBlur(m, (0, 0), 2) for m in (st, end, bl)])


def _page_features(seed: int = 0, shape: tuple[int, int] = (420, 640)) -> np.ndarray:
    """A page-like grey image (ink strokes on lines) and its seam energy."""
    rng = np.random.default_rng(seed)
    page = np.full(shape, 235, np.uint8)
    for y in range(50, shape[0] - 30, 45):
        for x in range(40, shape[1] - 60, 9):
            if rng.random() < 0.8:
                cv2.line(page, (x, y), (x + int(rng.integers(-4, 5)), y - int(rng.integers(8, 24))), 30, 2)
    return fastseg.features(page)


def test_ridge_filter_is_skimage_sato():
    from skimage.filters import sato

    heat = _heatmaps(1)[2]
    ours = fastseg.ridges(heat)
    theirs = sato(heat, black_ridges=False, mode="constant")
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.array_equal(ours > 0.17, theirs > 0.17)  # Kraken's baseline threshold


@pytest.mark.kraken
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baselines_and_regions_are_krakens(seed):
    from kraken.lib.segmentation import vectorize_lines, vectorize_regions

    heat = _heatmaps(seed)
    ours = fastseg.baselines(heat)
    assert len(ours) >= 7
    assert ours == vectorize_lines(heat)
    region = cv2.GaussianBlur((heat[2] > 0.05).astype(np.float32), (0, 0), 8)
    assert fastseg.regions(region) == vectorize_regions(region)


@pytest.mark.kraken
@pytest.mark.parametrize("seed", [0, 3])
def test_polygons_are_krakens(seed):
    """Every line's polygon, bounded by its neighbours, the page edges and a region, is Kraken's to the pixel."""
    from kraken.lib.segmentation import calculate_polygonal_environment

    lines = fastseg.baselines(_heatmaps(seed))
    feats = _page_features(seed)
    region = [[10, 10], [630, 10], [630, 410], [10, 410]]
    suppl = [[region] if k % 2 else [] for k in range(len(lines))]  # the region bounds every other line
    ours = fastseg.polygons(lines, feats, suppl)
    theirs = [
        calculate_polygonal_environment(
            baselines=[bl], im_feats=feats, suppl_obj=lines[:k] + lines[k + 1 :] + suppl[k], topline=False
        )[0]
        for k, bl in enumerate(lines)
    ]
    assert all(p is not None for p in ours)
    assert ours == [np.asarray(p).tolist() for p in theirs]


def test_engine_option_and_resume_key():
    """`fast` is the default; the engine never enters the resume key (both give the same output), so a run
    resumes over pages the other engine made; ALTO's Processing names htr.fastseg when it ran."""
    assert RunSettings().segment.engine == "fast"
    assert make_settings(segment={"engine": "kraken"}).output_settings() == RunSettings().output_settings()
    for arg in ("fast", "kraken"):
        args = parser().parse_args(["enrich", "in", "-o", "out", "--seg-engine", arg])
        assert settings_from(args).segment.engine == arg
    with pytest.raises(SystemExit):
        parser().parse_args(["enrich", "in", "-o", "out", "--seg-engine", "quick"])


# one page of each of three datasets: a letter, a typescript, a register (tables, 73 lines)
PAGES = [
    "cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_001.jpg",
    "tapuscorpus/12148-btv1b10581912k/20_21abf_default.jpg",
    "lectaurep-repertoires/lectaurep-dufour-1/DAFANCH96_048MIC07645_L-0.jpg",
]


@pytest.mark.slow
@pytest.mark.kraken
@pytest.mark.parametrize("rel", PAGES, ids=lambda r: Path(r).parts[0])
def test_fast_engine_segments_real_pages_as_kraken_does(gt_dir, rel):
    """The same regions, baselines, polygons and reading order as Kraken's whole path, so the same line recall
    and CER (issue 14's bar: within 0.5 point)."""
    from htr import segment
    from htr.config import SegmentSettings

    path = gt_dir / rel
    if not path.exists():
        pytest.skip(f"ground-truth page missing: {path}")
    image = Image.open(path)
    image = image.convert("RGB") if image.mode not in ("L", "RGB") else image
    fast = segment.run(image, SegmentSettings(engine="fast"))
    kraken = segment.run(image, SegmentSettings(engine="kraken"))
    assert len(fast.lines) >= 10
    assert fast == kraken


@pytest.mark.slow
@pytest.mark.kraken
def test_blank_page_has_no_lines_with_either_engine():
    """A blank scan (a page left empty, a separator sheet): no lines, no error, the same (spurious) regions."""
    from htr import segment
    from htr.config import SegmentSettings

    blank = Image.new("L", (1000, 1400), 255)
    fast = segment.run(blank, SegmentSettings(engine="fast"))
    assert fast.lines == ()
    assert fast == segment.run(blank, SegmentSettings(engine="kraken"))
