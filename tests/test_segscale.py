"""`--seg-height`: the settings it makes, the resume key it leaves alone, and `auto`'s probe rule (no Kraken)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from cli.main import parser
from cli.options import settings_from
from htr import segscale
from htr.config import RunSettings, SegmentSettings, make_settings
from htr.errors import ConfigError
from htr.types import Line, PageSegmentation


def _page(ys: list[int], x0: int = 100, x1: int = 900, height: int = 1500) -> PageSegmentation:
    lines = tuple(
        Line(f"l{k}", ((x0, y), (x1, y)), ((x0, y - 20), (x1, y - 20), (x1, y + 5), (x0, y + 5)))
        for k, y in enumerate(ys)
    )
    return PageSegmentation(1000, height, lines=lines)


def test_default_keeps_the_resume_key_and_alto_parameters_of_runs_made_before_the_option():
    s = RunSettings()
    assert s.segment.key() == {"model": None, "text_direction": "horizontal-lr"}
    assert "height" not in s.output_settings()["segment"]
    assert make_settings(segment={"height": 1200}).output_settings()["segment"]["height"] == 1200
    assert make_settings(segment={"height": "auto"}).output_settings() != s.output_settings()


@pytest.mark.parametrize(("arg", "want"), [("model", None), ("auto", "auto"), ("1200", 1200)])
def test_seg_height_option(arg, want, tmp_path):
    args = parser().parse_args(["enrich", str(tmp_path), "-o", str(tmp_path / "out"), "--seg-height", arg])
    assert settings_from(args).segment.height == want


@pytest.mark.parametrize("arg", ["big", "300", "5000"])
def test_bad_seg_height_is_a_config_error_naming_the_option_or_range(arg, tmp_path):
    args = parser().parse_args(["enrich", str(tmp_path), "-o", str(tmp_path / "out"), "--seg-height", arg])
    with pytest.raises(ConfigError, match="seg-height|between 600 and 4000"):
        settings_from(args)
    with pytest.raises(ValueError):
        SegmentSettings(height="small")


def test_line_pitch_is_the_median_distance_to_the_nearest_overlapping_line():
    assert segscale.line_pitch(_page([100, 160, 220, 280, 400])) == 60
    # two columns side by side: lines of the other column do not count as neighbours
    left, right = _page([100, 150, 200], 0, 400), _page([110, 170, 230], 600, 1000)
    both = PageSegmentation(1000, 1500, lines=left.lines + right.lines)
    assert segscale.line_pitch(both) == 55  # 50 on the left, 60 on the right: never the 10 across columns
    assert segscale.line_pitch(_page([100, 200])) is None  # too few lines to say


def test_probe_kept_only_when_lines_are_far_enough_apart_at_the_probe_height():
    # 1500 px page probed at 1200: a pitch of 35 page px is 28 network px (kept), 30 is 24 (refused)
    assert segscale.probe_is_enough(_page(list(range(100, 1400, 35))), 1200)
    assert not segscale.probe_is_enough(_page(list(range(100, 1400, 30))), 1200)
    assert segscale.probe_is_enough(_page([300]), 1200)  # one line: nothing says the probe was too coarse
    # a register: short entries (a fifth of the page wide), however far apart, go to the model's height
    assert not segscale.probe_is_enough(_page(list(range(100, 1400, 60)), 100, 300), 1200)
    assert segscale.line_share(_page([100, 200], 100, 300)) == pytest.approx(0.2)


def test_wide_pages_and_small_models_are_never_probed():
    assert segscale.probe_height(1000, 1500, 1800) == segscale.PROBE_HEIGHT
    assert segscale.probe_height(5680, 4180, 1800) is None  # a landscape double page
    assert segscale.probe_height(1000, 1500, 1200) is None  # the model already works at or below the probe


@pytest.mark.slow
def test_auto_height_reads_three_real_pages_as_well_as_kraken_path(kraken_run, gt_dir, tmp_path):
    """The shared run (Kraken's path) and the same pages with `--seg-height auto`, both scored against the
    ground truth: per page, line recall at IoU >= 0.5 no lower by more than one line in fifty and CER no
    worse by more than 0.5 point. The letter and the typescript are segmented at the probe's height (their
    ALTO differs from Kraken's path); the register falls back to the model's height (same lines)."""
    from htr.evaluate import evaluate_predictions
    from tests.conftest import KRAKEN_PAGES, enrich_run

    src, out_model, _ = kraken_run
    out_auto = tmp_path / "out"
    summary = enrich_run(src, out_auto, segment={"height": "auto"})
    assert summary["done"] == 3, summary
    gt_files = [gt_dir / folder / Path(image).with_suffix(".xml").name for folder, image, _ in KRAKEN_PAGES]
    scores = {}
    for name, out in (("model", out_model), ("auto", out_auto)):
        result = evaluate_predictions(gt_files, out / "alto")
        assert len(result.pages) == 3 and not result.unpaired_gt, result.unpaired_gt
        scores[name] = {Path(p.gt_path).stem: p.score for p in result.pages}
    for page, model in scores["model"].items():
        auto = scores["auto"][page]
        assert auto.line_recall >= model.line_recall - 0.02, (page, model.line_recall, auto.line_recall)
        assert auto.cer <= model.cer + 0.005, (page, model.cer, auto.cer)

    def lines_of(out: Path, page_id: str) -> list[str]:
        root = etree.parse(str(out / "alto" / f"{page_id}.xml")).getroot()
        return [ln.get("BASELINE") for ln in root.iter("{*}TextLine")]

    letter, typescript, register = (pid for _, _, pid in KRAKEN_PAGES)
    assert lines_of(out_auto, register) == lines_of(out_model, register)
    assert lines_of(out_auto, letter) != lines_of(out_model, letter)
    assert lines_of(out_auto, typescript) != lines_of(out_model, typescript)
