"""The page runner (htr.pipeline): each stage timed, an error labelled with the stage that raised it, the
work file removed whatever happens. Fast: Kraken's segmentation and recognition are replaced by stubs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from htr import images, pipeline, recognize, segment, state
from htr.config import make_settings
from htr.errors import RecognitionError, SegmentationError
from htr.models import ModelInfo
from htr.types import Line, LineText, PageRef, PageSegmentation, PageText, Word

MODELS = pipeline.Models(ModelInfo("seg", "/nowhere/seg.mlmodel", "0" * 64), ModelInfo("rec", "/nowhere/rec", "1" * 64))
W, H = 240, 120


@pytest.fixture
def page(tmp_path: Path) -> PageRef:
    """A TIFF: `images.load` normalises it into a work file under OUT/.work, which the runner must remove."""
    src = tmp_path / "scan.tif"
    Image.new("RGB", (W, H), "white").save(src)
    return PageRef("scan", str(src), 0, "f" * 64)


def _segmentation(image, *args, **kwargs) -> PageSegmentation:
    return PageSegmentation(
        image.width, image.height, (), (Line("l1", ((10, 60), (200, 60)), ((10, 40), (200, 40), (200, 70), (10, 70))),)
    )


def _text(image, seg, *args, **kwargs) -> PageText:
    return PageText(
        (LineText("l1", "Le maire", 0.9, (Word("Le", (10, 40, 40, 70), 0.9), Word("maire", (50, 40, 120, 70), 0.9))),)
    )


def _fail(exc: Exception):
    def stub(*args, **kwargs):
        raise exc

    return stub


def _process(page: PageRef, out: Path, monkeypatch):
    loaded = []
    load = images.load
    monkeypatch.setattr(images, "load", lambda *a, **k: loaded.append(load(*a, **k)) or loaded[-1])
    result = pipeline.process_page(page, out, make_settings(entities=False), MODELS, key="k")
    assert Path(loaded[0].path).parent == state.work_dir(out), "the TIFF should have been normalised into a work file"
    assert not Path(loaded[0].path).exists(), "the normalised work file was left behind"
    assert not state.running_path(out, page.id).exists()
    assert json.loads(state.marker_path(out, page.id).read_text())["status"] == result.status
    return result


def test_segmentation_failure_is_labelled_segment(page, tmp_path, monkeypatch):
    monkeypatch.setattr(segment, "run", _fail(SegmentationError("kraken gave up", page_id="scan")))
    monkeypatch.setattr(recognize, "run", _fail(AssertionError("recognition must not run")))
    result = _process(page, tmp_path / "out", monkeypatch)
    assert result.status == "failed"
    assert result.error == "segment: scan: kraken gave up"
    assert set(result.timings) == {"load", "preprocess", "total"}  # a stage that raised adds no time


@pytest.mark.parametrize(
    "exc, says",
    [
        (RecognitionError("no line could be read", page_id="scan"), "recognize: scan: no line could be read"),
        (RuntimeError("CUDA error"), "recognize: {source}: RuntimeError: CUDA error"),  # not ours: still isolated
    ],
)
def test_recognition_failure_is_labelled_recognize(page, tmp_path, monkeypatch, exc, says):
    monkeypatch.setattr(segment, "run", _segmentation)
    monkeypatch.setattr(recognize, "run", _fail(exc))
    result = _process(page, tmp_path / "out", monkeypatch)
    assert result.status == "failed"
    assert result.error == says.format(source=page.source)
    assert set(result.timings) == {"load", "preprocess", "segment", "total"}


def test_every_stage_is_timed_and_outputs_written(page, tmp_path, monkeypatch):
    monkeypatch.setattr(segment, "run", _segmentation)
    monkeypatch.setattr(recognize, "run", _text)
    out = tmp_path / "out"
    result = _process(page, out, monkeypatch)
    assert result.status == "done", result.error
    assert set(result.timings) == {"load", "preprocess", "segment", "recognize", "write", "total"}
    assert result.lines == 1 and result.mean_confidence == pytest.approx(0.9)
    assert state.text_path(out, "scan").read_text(encoding="utf-8").strip() == "Le maire"
    assert 'CONTENT="maire"' in state.alto_path(out, "scan").read_text(encoding="utf-8")


def test_runner_labels_and_times():
    run = pipeline.StageRunner()
    assert run.run("segment", lambda x: x + 1, 1) == 2
    with pytest.raises(ZeroDivisionError):
        run.run("recognize", lambda: 1 / 0)
    run.run("map", lambda: None, timed=False)
    assert run.stage == "map"
    assert set(run.finish()) == {"segment", "total"}
