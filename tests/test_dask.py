"""Page tasks on an existing Dask cluster (scheduler + 2 workers as subprocesses on loopback).

Real pages of ../shared/gt (their lines re-read with the shipped model) through
`enrich_collection(..., cluster=ADDRESS)`: both workers do work, and the ALTO equals the local run of
the same pages that the session shares (`reread_run`). A Dask worker killed while it reads a page
(twice: Dask retries it once elsewhere) fails that page only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from htr import state
from tests.conftest import REREAD_SETTINGS, ROOT, model_or_skip

pytest.importorskip("prefect_dask", reason="prefect-dask not installed (pip install prefect-dask==0.3.7)")
pytestmark = [pytest.mark.slow, pytest.mark.kraken]

NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
GT_PAGES = ["01R_P1S3SS2P118_001.jpg", "01R_P1S3SS2P118_002.jpg"]  # 2 of the 3 pages of `reread_run`
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, prefect_harness):
    """`dask scheduler` + two `dask worker` (nanny, 1 process, 1 thread each) on 127.0.0.1; stopped by PID."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    tmp = tmp_path_factory.mktemp("dask")
    sched_file = tmp / "scheduler.json"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the workers report task runs to the test's API
        "OMP_NUM_THREADS": "1",
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",  # a page that kills 2 workers is KilledWorker
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",  # one task per thread: spread pages
    }
    procs: list[subprocess.Popen] = []
    logs = []

    def start(args: list[str], name: str) -> None:
        log = open(tmp / f"{name}.log", "wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [DASK, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    try:
        start(
            ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
            "scheduler",
        )
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            start(
                [
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--name",
                    f"w{i}",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--memory-limit",
                    "0",
                ],
                f"worker{i}",
            )
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):  # nannies stop their workers on SIGTERM
            if p.poll() is None:
                p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in logs:
            log.close()


def _geometry(alto: Path) -> dict:
    """Text and geometry of a page, IDs and timestamps aside."""
    doc = etree.parse(str(alto))
    lines = []
    for tl in doc.iterfind(".//a:TextLine", NS):
        poly = tl.find("a:Shape/a:Polygon", NS)
        strings = [
            tuple(s.get(k) for k in ("CONTENT", "HPOS", "VPOS", "WIDTH", "HEIGHT")) for s in tl.iterfind("a:String", NS)
        ]
        lines.append((tl.get("BASELINE"), poly.get("POINTS") if poly is not None else None, strings))
    return {"lines": lines}


def test_pages_run_on_both_dask_workers_and_match_a_local_run(tmp_path, reread_run, cluster):
    """Two pages on the cluster: each Dask worker reads one, and text and geometry equal the local run's."""
    from flows.enrich import enrich_collection

    export, local, _ = reread_run  # the same pages read by 2 local worker processes
    src = tmp_path / "src"
    src.mkdir()
    for rel in GT_PAGES:  # the image and its ground-truth ALTO: lines re-read, not segmented again
        shutil.copy(export / rel, src / rel)  # (what is distributed does not depend on it, and
        shutil.copy(export / Path(rel).with_suffix(".xml"), src)  # Kraken segmentation would triple the cost)
    settings = {**REREAD_SETTINGS, "threads_per_worker": 1}
    del settings["workers"]

    out = tmp_path / "dask"
    summary = enrich_collection([str(src)], str(out), settings, cluster=cluster)
    assert (summary["done"], summary["failed"]) == (2, 0), summary
    pages = json.loads((out / "run.json").read_text())["pages"]
    workers = {p["worker"] for p in pages}
    assert len(workers) == 2, f"both Dask workers should have read a page: {workers}"
    assert all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in workers)

    for f in sorted((out / "alto").glob("*.xml")):
        a, b = _geometry(f), _geometry(local / "alto" / f.name)
        assert len(a["lines"]) > 5
        assert a == b, f.name
        assert (out / "text" / f"{f.stem}.txt").read_text() == (local / "text" / f"{f.stem}.txt").read_text()
    assert sorted(f.name for f in (out / "alto").glob("*.xml")) == [
        Path(rel).with_suffix(".xml").name for rel in GT_PAGES
    ]


def test_killed_dask_worker_fails_only_its_page(tmp_path, cluster):
    """Kill whichever Dask worker announces it is reading the victim page, every time: KilledWorker -> failed.
    The pages' lines come from their ALTO (re-read, not segmented): the kill falls in recognition."""
    from flows.enrich import enrich_collection
    from tests.test_worker_death import killer

    model = model_or_skip()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("lettre_prefet_1934.jpg", "livre_comptes_1903.jpg"):
        shutil.copy(ROOT / "sample_images" / name, src / name)
        shutil.copy(ROOT / "sample_images" / "gt" / Path(name).with_suffix(".xml").name, src)
    victim = "livre_comptes_1903"
    out = tmp_path / "out"
    stop, kills = threading.Event(), []

    t = threading.Thread(target=killer, args=(out, victim, stop, kills), daemon=True)
    t.start()
    try:
        summary = enrich_collection(
            [str(src)],
            str(out),
            {"recognize": {"model": model.path}, "max_failures": 0.5, "segmentation_from": "alto"},
            cluster=cluster,
        )
    finally:
        stop.set()
        t.join()
    assert len(kills) == 2, kills  # allowed-failures=1: retried once on another worker, then KilledWorker
    assert (summary["done"], summary["failed"]) == (1, 1), summary
    pages = {p["page_id"]: p for p in json.loads((out / "run.json").read_text())["pages"]}
    assert pages[victim]["status"] == "failed"
    assert "Dask worker died" in pages[victim]["error"] and "livre_comptes_1903.jpg" in pages[victim]["error"]
    assert pages["lettre_prefet_1934"]["status"] == "done"
    assert not state.running_path(out, victim).exists()
