"""Preprocessing: exact coordinate maps, deskew precision, orientation, crop, split, and the pipeline.

Ground-truth pages come from ../shared/gt; degraded copies are made with bench/degrade.py,
the script the measurements in docs/PREPROCESSING.md use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alto.gt import read_gt
from htr import preprocess as P
from htr.config import make_settings
from htr.errors import ConfigError
from tests import degrade
from tests.conftest import need

TYPESCRIPT = "tapuscorpus/12148-btv1b53097347b/13_3536f_default.xml"
LETTER = "cremma-mss-19/lettre-boudreau-tessier/01R_P1S3SS1P019_001.xml"


def _page(gt_dir: Path, rel: str):
    g = read_gt(need(gt_dir / rel, f"ground-truth page {rel}"))
    return g, np.asarray(Image.open(g.image_path).convert("RGB"))


def _median_baseline_angle(lines) -> float:
    """Median angle (degrees, counter-clockwise positive) of long baselines."""
    angles = [
        math.degrees(math.atan2(-(b[-1][1] - b[0][1]), b[-1][0] - b[0][0]))
        for b in (ln for ln in lines)
        if len(b) >= 2 and abs(b[-1][0] - b[0][0]) > 200
    ]
    return float(np.median(angles))


# --------------------------------------------------------------------------- exact maps


def test_quarter_turn_map_exact_numbers():
    back, w, h = P.rotation(90, 100, 50)  # content turned 90 degrees counter-clockwise
    assert (w, h) == (50, 100)
    img = np.arange(50 * 100).reshape(50, 100)
    turned = np.rot90(img, 1)
    for x, y in [(0, 0), (49, 0), (0, 99), (17, 63)]:
        ox, oy = back.point(x, y)
        assert (ox, oy) == (99 - y, x)
        assert turned[y, x] == img[int(oy), int(ox)]


def test_rotation_and_crop_compose_and_invert_within_a_pixel():
    back, w, h = P.rotation(-5.0, 2000, 3000)
    crop = P.Transform((1, 0, 120, 0, 1, 80))
    t = back.then(crop)
    # a known point of the processed image: rotate it by hand
    x, y = 400.0, 900.0
    u, v = x + 120, y + 80
    a = math.radians(-5.0)
    cx, cy, ncx, ncy = 999.5, 1499.5, (w - 1) / 2, (h - 1) / 2
    ex = math.cos(a) * (u - ncx) - math.sin(a) * (v - ncy) + cx
    ey = math.sin(a) * (u - ncx) + math.cos(a) * (v - ncy) + cy
    ox, oy = t.point(x, y)
    assert abs(ox - ex) < 1 and abs(oy - ey) < 1
    rx, ry = t.inverse().point(ox, oy)
    assert abs(rx - x) < 1e-6 and abs(ry - y) < 1e-6
    # mapping a box gives the box of its mapped corners, clamped into the page
    assert t.box((0, 0, 10, 10), 2000, 3000)[0] >= 0


def test_exact_quarter_turn_is_undone_pixel_for_pixel(gt_dir):
    _, img = _page(gt_dir, TYPESCRIPT)
    for turn in (90, 180, 270):
        rotated, _, _ = degrade.quarter(img, turn)
        pre = P.run(Image.fromarray(rotated), ("orient",))
        part = pre.parts[0]
        assert pre.info["orient"]["turn"] == (360 - turn) % 360, pre.info
        assert np.array_equal(np.asarray(part.image), img)  # no resampling for quarter turns
        # pixel (x, y) of the result is pixel t(x, y) of the rotated scan
        for x, y in [(0, 0), (123, 456), (img.shape[1] - 1, img.shape[0] - 1)]:
            ox, oy = part.transform.point(x, y)
            assert np.array_equal(rotated[round(oy), round(ox)], img[y, x])


# --------------------------------------------------------------------------- deskew


def test_five_degree_rotated_page_is_straightened_within_half_a_degree(gt_dir):
    g, img = _page(gt_dir, TYPESCRIPT)
    own = _median_baseline_angle([ln.baseline for ln in g.lines])  # the scan itself leans 0.6 degrees
    for angle in (5.0, -5.0):
        rotated, forward, _ = degrade.skew_by(img, angle)
        pre = P.run(Image.fromarray(rotated), ("deskew",))
        assert abs(pre.info["deskew"]["angle"] - (angle + own)) <= 0.5, (own, pre.info)
        # the ground-truth baselines, carried into the straightened image, are horizontal
        to_processed = pre.parts[0].transform.inverse()
        baselines = [[to_processed.point(*forward.point(*p)) for p in ln.baseline] for ln in g.lines]
        assert abs(_median_baseline_angle(baselines)) <= 0.5


def test_straight_page_is_left_alone(gt_dir):
    _, img = _page(gt_dir, TYPESCRIPT)
    pre = P.run(Image.fromarray(img), ("deskew", "crop", "split"))
    assert pre.parts[0].transform.is_identity and len(pre.parts) == 1, pre.info
    assert pre.parts[0].image.size == (img.shape[1], img.shape[0])


# --------------------------------------------------------------------------- crop, split


def test_dark_borders_are_cropped_and_coordinates_shift_back(gt_dir):
    _, img = _page(gt_dir, LETTER)
    import random

    bordered, forward, info = degrade.border(img, random.Random(3))
    left, top, right, bottom = info["borders"]
    pre = P.run(Image.fromarray(bordered), ("crop",))
    x0, y0, x1, y1 = pre.info["crop"]["box"]
    scale = max(bordered.shape[:2]) / P.ESTIMATE_SIDE  # estimated on a small copy: a few pixels
    assert abs(x0 - left) <= 4 * scale and abs(y0 - top) <= 4 * scale
    assert abs((bordered.shape[1] - x1) - right) <= 4 * scale and abs((bordered.shape[0] - y1) - bottom) <= 4 * scale
    # a point of the cropped image maps back to the same pixel of the bordered scan
    t = pre.parts[0].transform
    cropped = np.asarray(pre.parts[0].image)
    for x, y in [(0, 0), (500, 700), (cropped.shape[1] - 1, cropped.shape[0] - 1)]:
        ox, oy = t.point(x, y)
        assert np.array_equal(bordered[round(oy), round(ox)], cropped[y, x])


def test_double_page_is_split_at_the_gutter(gt_dir):
    _, a = _page(gt_dir, LETTER)
    _, b = _page(gt_dir, LETTER.replace("_001", "_002"))
    both, _, tb, info = degrade.double(a, b)
    pre = P.run(Image.fromarray(both), ("split",))
    assert [p.suffix for p in pre.parts] == ["-L", "-R"], pre.info
    g = pre.info["split"]["gutter"]
    # the cut falls in the blank margins around the seam, not through text
    assert abs(g - info["left_width"]) < 0.1 * a.shape[1]
    left, right = pre.parts
    assert left.transform.is_identity and right.transform.point(0, 0) == (g, 0)
    assert left.image.width + right.image.width == both.shape[1]


def test_single_real_pages_are_not_split(gt_dir):
    for rel in (TYPESCRIPT, LETTER, "lectaurep-repertoires/lectaurep-riant-4/DAFANCH96_048MIC06479_L-1.xml"):
        _, img = _page(gt_dir, rel)
        small, _ = P._small(P.to_gray(img))
        assert P.estimate_gutter(small)[0] is None, rel


# --------------------------------------------------------------------------- photometry, settings


def test_photometric_steps_keep_geometry_and_bound_memory(gt_dir):
    import tracemalloc

    _, img = _page(gt_dir, LETTER)
    per_pixel = []
    for scale in (1, 2):  # the same page, then 4x the pixels
        page = Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale))
        tracemalloc.start()  # numpy and OpenCV's output arrays are traced
        try:
            pre = P.run(page, ("flatten", "clahe", "denoise", "binarize"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        part = pre.parts[0]
        assert part.transform.is_identity and part.image.size == page.size
        assert part.image.mode == "L" and set(np.unique(np.asarray(part.image))) <= {0, 255}
        per_pixel.append(peak / (page.width * page.height))
    # filters run in strips: the peak is a small multiple of the page (measured: 34 then 25 bytes per
    # pixel, the RGB page itself is 3) and does not grow per pixel with the page
    assert per_pixel[0] < 45 and per_pixel[1] <= per_pixel[0], per_pixel


def test_profiles_and_unknown_steps():
    assert P.parse_steps("none") == ()
    assert P.parse_steps("crop,deskew") == ("deskew", "crop")  # fixed order
    with pytest.raises(ConfigError, match="unknown preprocessing step"):
        make_settings(preprocess={"steps": "deskew,sharpen"})
    with pytest.raises(ConfigError, match="segmentation-from"):
        make_settings(preprocess={"steps": "deskew"}, segmentation_from="alto")
    plain, pre = make_settings(), make_settings(preprocess={"steps": "deskew"})
    assert "preprocess" not in plain.output_settings()  # outputs of earlier runs stay valid
    assert pre.output_settings()["preprocess"]["steps"] == ["deskew"]


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.slow
@pytest.mark.kraken
def test_pipeline_on_a_rotated_double_page_writes_two_valid_alto_in_scan_coordinates(gt_dir, schemas_dir, tmp_path):
    """A skewed double-page scan: two ALTO (-L, -R) whose lines land on the ground truth of the scan."""
    from alto.validate import validate_file
    from htr import images, pipeline, state
    from htr.evaluate import evaluate_predictions

    xsd = need(schemas_dir / "alto-4-4.xsd", "ALTO 4.4 schema")
    src = tmp_path / "src"
    g1 = read_gt(gt_dir / TYPESCRIPT)
    g2 = read_gt(gt_dir / TYPESCRIPT.replace("13_3536f", "19_13cb6"))
    a, b = (np.asarray(Image.open(g.image_path).convert("RGB").reduce(2)) for g in (g1, g2))
    both, ta, tb, _ = degrade.double(a, b)
    half = P.Transform((0.5, 0, 0, 0, 0.5, 0))
    rotated, forward, _ = degrade.skew_by(both, 3.0)
    h, w = rotated.shape[:2]
    lines = degrade._moved_lines(g1, forward.then(ta).then(half), w, h, "L_") + degrade._moved_lines(
        g2, forward.then(tb).then(half), w, h, "R_"
    )
    degrade.write_gt(src / "scan", rotated, lines)

    settings = make_settings(preprocess={"steps": "deskew,split"}, entities=False)
    refs, _ = images.discover([src / "scan.png"])
    models = pipeline.resolve_models(settings)
    res = pipeline.process_page(refs[0], tmp_path / "out", settings, models, "k")
    assert res.status == "done", res.error
    assert res.parts == ("scan-L", "scan-R")
    for pid in res.parts:
        alto = state.alto_path(tmp_path / "out", pid)
        assert validate_file(alto, xsd_path=xsd) == [], alto
        xml = alto.read_text()
        assert 'WIDTH="%d"' % w in xml and "image preprocessing" in xml
    assert state.is_done(tmp_path / "out", "scan", "k") is not None
    ev = evaluate_predictions([src / "scan.xml"], tmp_path / "out").to_dict()["overall"]
    assert ev["line_recall"] >= 0.8 and ev["cer"] < 0.35, ev
    marker = json.loads(state.marker_path(tmp_path / "out", "scan").read_text())
    assert abs(marker["preprocess"]["skew"] - 3.0) <= 0.5


def test_command_line_preprocess_option_reaches_the_settings():
    from cli.main import parser
    from cli.options import DEFAULT_PREPROCESS, settings_from

    args = parser().parse_args(["enrich", "in", "-o", "out", "--preprocess", "split,deskew"])
    assert settings_from(args).preprocess.steps == ("deskew", "split")
    args = parser().parse_args(["enrich", "in", "-o", "out"])
    assert settings_from(args).preprocess.steps == P.parse_steps(DEFAULT_PREPROCESS)
    # with --segmentation-from the default is no preprocessing (the lines' pixels must not move)
    args = parser().parse_args(["enrich", "in", "-o", "out", "--segmentation-from", "alto"])
    assert settings_from(args, segmentation_from="alto").preprocess.steps == ()
    with pytest.raises(ConfigError, match="unknown preprocessing step"):
        settings_from(parser().parse_args(["enrich", "in", "-o", "out", "--preprocess", "sharpen"]))
