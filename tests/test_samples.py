"""The synthetic sample pages of sample_images/ and their ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"
GENERATOR = SAMPLES / "make_samples.py"
GT_FILES = sorted(SAMPLES.glob("*.gt.json"))


def _load(gt_path: Path) -> dict:
    return json.loads(gt_path.read_text(encoding="utf-8"))


def _darkness(gt_path: Path) -> np.ndarray:
    gt = _load(gt_path)
    with Image.open(SAMPLES / gt["image"]) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    return 255.0 - grey


def _baseline_y(baseline: list[list[int]], xs: np.ndarray) -> np.ndarray:
    bx = np.array([p[0] for p in baseline], dtype=float)
    by = np.array([p[1] for p in baseline], dtype=float)
    return np.interp(xs, bx, by)


def _band_mask(shape: tuple[int, int], xs: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Mask of the band between two polylines sampled at xs (top above bottom)."""
    pts = np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.rint(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def _poly_mask(shape: tuple[int, int], polygon: list[list[int]]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.array(polygon, np.int32)], 1)
    return mask.astype(bool)


def ink_profile(gt: dict, dark: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean darkness just above each GT baseline (inside its polygon), and in the gaps between lines."""
    shape = dark.shape
    by_region: dict[str, list[dict]] = {}
    for ln in gt["lines"]:
        by_region.setdefault(ln.get("region_id") or "", []).append(ln)
    spacings = []
    for lines in by_region.values():
        for a, b in zip(lines, lines[1:]):
            xs = np.array(
                [max(a["baseline"][0][0], b["baseline"][0][0]), min(a["baseline"][-1][0], b["baseline"][-1][0])], float
            )
            if xs[1] > xs[0]:
                spacings.append(float(np.mean(_baseline_y(b["baseline"], xs) - _baseline_y(a["baseline"], xs))))
    spacing = float(np.median(spacings))
    above, gaps = [], []
    for lines in by_region.values():
        for k, ln in enumerate(lines):
            x0, x1 = ln["baseline"][0][0], ln["baseline"][-1][0]
            xs = np.arange(x0, x1 + 1, 4, dtype=float)
            base = _baseline_y(ln["baseline"], xs)
            band = _band_mask(shape, xs, base - 0.2 * spacing, base - 2) & _poly_mask(shape, ln["polygon"])
            above.append(float(dark[band].mean()))
            if k + 1 < len(lines):
                nxt = lines[k + 1]
                g0, g1 = max(x0, nxt["baseline"][0][0]), min(x1, nxt["baseline"][-1][0])
                if g1 - g0 < 50:
                    continue
                gx = np.arange(g0, g1 + 1, 4, dtype=float)
                mid = (_baseline_y(ln["baseline"], gx) + _baseline_y(nxt["baseline"], gx)) / 2
                if np.any(_baseline_y(nxt["baseline"], gx) - _baseline_y(ln["baseline"], gx) > 2 * spacing):
                    continue  # an empty slot between the two lines: not a line gap
                gaps.append(float(dark[_band_mask(shape, gx, mid - 0.06 * spacing, mid + 0.06 * spacing)].mean()))
    return above, gaps


def test_five_sample_images_with_ground_truth():
    images = sorted(SAMPLES.glob("*.jpg"))
    assert len(images) == 5, images
    assert len(GT_FILES) == 5
    assert {p.name for p in images} == {_load(g)["image"] for g in GT_FILES}
    assert sum(p.stat().st_size for p in images) < 4 * 1024 * 1024
    for p in images:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode in ("L", "RGB")
            assert 1200 <= im.width <= 2000 and 1600 <= im.height <= 2600


@pytest.mark.parametrize("gt_path", GT_FILES, ids=lambda p: p.name.split(".")[0])
def test_ground_truth_is_consistent(gt_path: Path):
    gt = _load(gt_path)
    with Image.open(SAMPLES / gt["image"]) as im:
        assert (im.width, im.height) == (gt["width"], gt["height"])
    w, h = gt["width"], gt["height"]
    lines = gt["lines"]
    assert 12 <= len(lines) <= 22
    ids = [ln["id"] for ln in lines]
    assert len(set(ids)) == len(ids)
    region_ids = {r["id"] for r in gt["regions"]}
    for ln in lines:
        assert ln["region_id"] in region_ids
        text = ln["text"]
        assert text.strip() and text == text.strip()
        assert unicodedata.normalize("NFC", text) == text
        assert " ".join(wd["text"] for wd in ln["words"]) == text
        assert len(ln["baseline"]) >= 2 and len(ln["polygon"]) >= 3
        xs = [p[0] for p in ln["baseline"]]
        assert xs == sorted(xs), "baseline runs left to right"
        points = (
            ln["baseline"]
            + ln["polygon"]
            + [[b[0], b[1]] for wd in ln["words"] for b in (wd["box"][:2], wd["box"][2:])]
        )
        for x, y in points:
            assert 0 <= x <= w and 0 <= y <= h, (ln["id"], x, y)
        # the baseline lies inside its polygon
        poly = np.array(ln["polygon"], np.float32)
        for x, y in ln["baseline"]:
            assert cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= -2, (ln["id"], x, y)
    for r in gt["regions"]:
        for x, y in r["polygon"]:
            assert 0 <= x < w and 0 <= y < h


@pytest.mark.parametrize("gt_path", GT_FILES, ids=lambda p: p.name.split(".")[0])
def test_line_polygons_barely_overlap(gt_path: Path):
    gt = _load(gt_path)
    shape = (gt["height"], gt["width"])
    masks = [_poly_mask(shape, ln["polygon"]) for ln in gt["lines"]]
    boxes = [(*np.min(ln["polygon"], axis=0), *np.max(ln["polygon"], axis=0)) for ln in gt["lines"]]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes[i], boxes[j]
            if ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0:
                continue
            inter = np.logical_and(masks[i], masks[j]).sum()
            assert inter <= 0.03 * min(masks[i].sum(), masks[j].sum()), (
                gt["lines"][i]["id"],
                gt["lines"][j]["id"],
                inter,
            )


@pytest.mark.parametrize("gt_path", GT_FILES, ids=lambda p: p.name.split(".")[0])
def test_ink_sits_on_the_baselines(gt_path: Path):
    above, gaps = ink_profile(_load(gt_path), _darkness(gt_path))
    gap = float(np.median(gaps))
    assert len(gaps) >= 5
    for i, a in enumerate(above):
        assert a > gap + 12 and a > 1.3 * gap, (i, a, gap)


@pytest.mark.parametrize("gt_path", GT_FILES, ids=lambda p: p.name.split(".")[0])
def test_shifted_geometry_fails_the_ink_check(gt_path: Path):
    """Control: the same measure on the geometry moved half a line down finds (almost) no ink."""
    gt = _load(gt_path)
    dark = _darkness(gt_path)
    above, gaps = ink_profile(gt, dark)
    spacing = int(
        np.median(
            np.diff([ln["baseline"][0][1] for ln in gt["lines"] if ln["region_id"] == gt["lines"][0]["region_id"]])
        )
    )
    for ln in gt["lines"]:
        ln["baseline"] = [[x, y + spacing // 2] for x, y in ln["baseline"]]
        ln["polygon"] = [[x, y + spacing // 2] for x, y in ln["polygon"]]
    shifted, _ = ink_profile(gt, dark)
    assert np.median(shifted) < np.median(gaps) + 0.5 * (np.median(above) - np.median(gaps))


def _generator():
    sys.path.insert(0, str(SAMPLES))
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ among the samples
    try:
        import make_samples  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SAMPLES))
        sys.dont_write_bytecode = keep
    return make_samples


def _fonts_installed() -> bool:
    try:
        _generator().check_fonts()
        return True
    except Exception:
        return False


def test_missing_font_names_the_package(tmp_path: Path, monkeypatch, capsys):
    gen = _generator()
    monkeypatch.setattr(gen, "FONT_ROOT", tmp_path / "no-fonts")
    assert gen.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install" in err and "fonts-joscelyn" in err and "fonts-gnutypewriter" in err
    assert not list((tmp_path / "out").glob("*"))


@pytest.mark.parametrize("gt_path", GT_FILES, ids=lambda p: p.name.split(".")[0])
def test_alto_ground_truth_matches_json(gt_path: Path):
    xml = SAMPLES / "gt" / (gt_path.name.split(".")[0] + ".xml")
    if not xml.exists():
        pytest.skip("no ALTO ground truth (alto.writer was not available when the samples were made)")
    read_gt = pytest.importorskip("alto.gt").read_gt
    validate = pytest.importorskip("alto.validate")
    assert validate.validate_file(xml) == []
    page = read_gt(xml)
    gt = _load(gt_path)
    assert page.image_path == (SAMPLES / gt["image"]).resolve()
    assert (page.width, page.height) == (gt["width"], gt["height"])
    assert [ln.text for ln in page.lines] == [ln["text"] for ln in gt["lines"]]
    assert [[list(p) for p in ln.baseline] for ln in page.lines] == [ln["baseline"] for ln in gt["lines"]]


@pytest.mark.skipif(
    not _fonts_installed(), reason="handwriting font packages not installed (see sample_images/README.md)"
)
def test_generator_is_deterministic(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path), "--no-alto"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for gt_path in GT_FILES:
        fresh = tmp_path / gt_path.name
        assert fresh.read_text(encoding="utf-8") == gt_path.read_text(encoding="utf-8"), gt_path.name
        with Image.open(tmp_path / _load(gt_path)["image"]) as a, Image.open(SAMPLES / _load(gt_path)["image"]) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), gt_path.name
