"""A worker process killed from outside (as the OOM killer would) fails its page only; the rest complete."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from htr import state
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.kraken]

SAMPLES = ["lettre_prefet_1934.jpg", "livre_comptes_1903.jpg", "acte_vente_1687.jpg"]
VICTIM = "livre_comptes_1903"


def killer(out: Path, page_id: str, stop: threading.Event, kills: list[int]) -> None:
    """SIGKILL whichever worker process announces it is working on `page_id`, every time it does."""
    marker = state.running_path(out, page_id)
    while not stop.is_set():
        try:
            pid = int(marker.read_text().rsplit(":", 1)[1])
        except (FileNotFoundError, ValueError, IndexError):
            time.sleep(0.05)
            continue
        if pid not in kills:
            time.sleep(0.1)  # inside the page: it takes seconds (model load, then about 20 lines)
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def test_killed_worker_fails_only_its_page(tmp_path, prefect_harness):
    """The worker reading one page is SIGKILLed each time it starts it: that page fails, the other two are done."""
    from flows.enrich import enrich_collection

    src = tmp_path / "src"
    src.mkdir()
    for name in SAMPLES:  # each image with its ALTO: the lines are re-read (Kraken recognition in the
        shutil.copy(ROOT / "sample_images" / name, src / name)  # workers), segmentation is not redone
        shutil.copy(ROOT / "sample_images" / "gt" / Path(name).with_suffix(".xml").name, src)
    out = tmp_path / "out"
    stop, kills = threading.Event(), []
    t = threading.Thread(target=killer, args=(out, VICTIM, stop, kills), daemon=True)
    t.start()
    try:
        summary = enrich_collection(
            [str(src)], str(out), {"workers": 2, "max_failures": 0.5, "segmentation_from": "alto"}
        )
    finally:
        stop.set()
        t.join()
    assert len(kills) == 2, kills  # once in the shared pool, once alone: then it is the culprit
    assert (summary["done"], summary["failed"]) == (2, 1)
    import json

    pages = {p["page_id"]: p for p in json.loads((out / "run.json").read_text())["pages"]}
    assert pages[VICTIM]["status"] == "failed"
    assert "worker process died" in pages[VICTIM]["error"] and VICTIM in pages[VICTIM]["error"]
    assert sorted(p.stem for p in (out / "alto").glob("*.xml")) == sorted(
        Path(s).stem for s in SAMPLES if VICTIM not in s
    )
