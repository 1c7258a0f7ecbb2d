"""Time to first page (issue 14): workers load their models before the first page, and `htr enrich` starts them
while the Prefect API starts. Every check is on an order of events or on what a process holds, never on a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from htr import pipeline, recognize, segment
from htr.config import RunSettings
from htr.errors import ModelError
from htr.index import entities
from htr.models import ModelInfo
from tests.conftest import ROOT

MODELS = pipeline.Models(ModelInfo("seg", "seg.mlmodel", "a"), ModelInfo("rec", "rec.safetensors", "b"))


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Record the model loads warm_up makes, in order, instead of making them."""
    events: list[str] = []
    monkeypatch.setattr(segment, "load", lambda settings, device="cpu": events.append(f"segmentation {device}"))
    monkeypatch.setattr(recognize, "load", lambda model, device="cpu": events.append(f"recognition {model.path}"))
    monkeypatch.setattr(entities, "load_model", lambda: events.append("ner"))
    return events


def test_warm_up_loads_what_pages_use_in_stage_order(loads):
    assert pipeline.warm_up(RunSettings(), MODELS) == ["segmentation", "recognition", "ner"]
    assert loads == ["segmentation cpu", "recognition rec.safetensors", "ner"]


def test_warm_up_loads_spacy_only_with_entities(loads):
    assert pipeline.warm_up(RunSettings(entities=False), MODELS) == ["segmentation", "recognition"]
    assert "ner" not in loads


def test_warm_up_skips_segmentation_when_lines_are_given(loads):
    assert pipeline.warm_up(RunSettings(segmentation_from="alto"), MODELS) == ["recognition", "ner"]


def test_warm_up_leaves_a_model_that_fails_to_the_page(loads, monkeypatch):
    def broken(model, device="cpu"):
        raise ModelError("cannot load recognition model: garbage", path=model.path)

    monkeypatch.setattr(recognize, "load", broken)
    assert pipeline.warm_up(RunSettings(), MODELS) == ["segmentation", "ner"]  # no raise: the page reports it


def test_prestart_starts_nothing_without_pages_to_do(tmp_path):
    from flows import enrich

    empty = tmp_path / "empty"
    empty.mkdir()
    assert enrich.prestart([str(empty)], str(tmp_path / "out"), {"workers": 1}) == 0
    missing = str(tmp_path / "missing")  # the flow meets the error and says it
    assert enrich.prestart([missing], str(tmp_path / "out2"), {"workers": 1}) == 0
    assert enrich.prestart([str(empty)], str(tmp_path / "out3"), {}, cluster="tcp://127.0.0.1:1") == 0
    enrich.release()


def _models_loaded() -> dict[str, int]:
    """In a worker: the models it holds (the caches the stages load through)."""
    return {
        "segmentation": segment._load.cache_info().currsize,
        "recognition": recognize._load.cache_info().currsize,
        "ner": entities.load_model.cache_info().currsize,
    }


@pytest.mark.slow
def test_prestarted_worker_holds_its_models_before_the_first_page(tmp_path):
    """The pool `prestart` starts is the one the flow's first pool takes, and its worker loaded every model
    (spaCy included: entities are on) before it ran anything: a task submitted first finds them loaded."""
    from flows import enrich
    from htr import collection

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "sample_images" / "lettre_prefet_1934.jpg", src)
    out = tmp_path / "out"
    settings = {"workers": 1}
    try:
        assert enrich.prestart([str(src)], str(out), settings) == 1
        plan = collection.plan([str(src)], out, RunSettings(**settings))
        with enrich._pool(1, RunSettings(**settings), plan.models, None) as runner:
            assert not enrich._prestarted  # taken
            executor = runner._executor
            assert executor is not None
            assert executor.submit(_models_loaded).result(timeout=900) == {
                "segmentation": 1,
                "recognition": 1,
                "ner": 1,
            }
    finally:
        enrich.release()


@pytest.mark.slow
def test_workers_start_before_the_api_server_is_waited_for(tmp_path):
    """`prefect_api(meanwhile=...)` runs `meanwhile` with the server's URL already set (what it spawns inherits
    it) and before the server answers; the URL it yields is the one `meanwhile` saw, and the server answers it."""
    script = textwrap.dedent(
        """
        import json, os, httpx
        from flows.runtime import prefect_api
        seen = {}
        def meanwhile():
            url = os.environ["PREFECT_API_URL"]
            try:
                httpx.get(url + "/health", timeout=2)
                seen["server_up"] = True
            except httpx.TransportError:
                seen["server_up"] = False
            seen["url"] = url
        with prefect_api(meanwhile=meanwhile) as url:
            ok = httpx.get(url + "/health", timeout=10).status_code == 200
        print(json.dumps({"seen": seen, "yielded": url, "healthy": ok}))
        """
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["seen"] == {"server_up": False, "url": got["yielded"]}
    assert got["healthy"]


def test_the_flow_takes_the_plan_prestart_made_instead_of_planning_again(tmp_path, monkeypatch):
    """Planning walks every file (and with --force hashes every image): the flow of the run `prestart`
    planned takes that plan, once; another run (other settings) plans for itself."""
    from flows import enrich
    from htr import collection

    calls = []
    real_plan = collection.plan

    def counting(*args, **kwargs):
        calls.append(args[:2])
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(collection, "plan", counting)
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("no page here\n")  # nothing pending: no pool is started
    out = str(tmp_path / "out")
    settings = {"workers": 1, "force": True}
    try:
        assert enrich.prestart([str(src)], out, settings) == 0
        planned = enrich._plan([str(src)], out, RunSettings(**settings))
        assert len(calls) == 1
        assert planned.ignored and not planned.pending
        enrich._plan([str(src)], out, RunSettings(**settings))  # taken once: a later run plans again
        enrich._plan([str(src)], out, RunSettings(workers=2))
        assert len(calls) == 3
    finally:
        enrich.release()
