"""`htr watch`: when an inbox file is complete (real files, the scan's clock given), and a watch run that
enriches only new pages (real Kraken recognition of lines given as ALTO beside each image)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from flows.watch import parse_every, scan_inbox, state_path
from htr.errors import ConfigError
from tests.conftest import ROOT, model_or_skip

SAMPLES = ROOT / "sample_images"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_parse_every():
    assert parse_every("15m") == 900
    assert parse_every("1h30m") == 5400
    assert parse_every("90s") == 90
    assert parse_every("45") == 45
    assert parse_every("2d") == 172800
    for bad in ("", "15x", "m", "0", "-5m", "15m oops"):
        with pytest.raises(ConfigError):
            parse_every(bad)


def test_growing_file_is_not_complete_until_it_settles(tmp_path):
    """A file is complete once two scans at least `settle` s apart see the same size and mtime."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    grow = write(inbox / "reg" / "0001.jpg", b"\xff\xd8" + b"x" * 1000)
    settle, t0 = 1.0, time.time()

    first = scan_inbox(inbox, out, settle, now=t0)
    assert first.complete == ()
    assert [p for p, _ in first.waiting] == ["reg/0001.jpg"]
    assert "first seen" in first.waiting[0][1]

    with open(grow, "ab") as fh:  # still being copied: it grew between the two scans
        fh.write(b"y" * 5000)
    second = scan_inbox(inbox, out, settle, now=t0 + settle + 0.2)
    assert second.complete == ()
    assert "changed since the last scan" in second.waiting[0][1] and "1002 -> 6002" in second.waiting[0][1]

    third = scan_inbox(inbox, out, settle, now=t0 + settle + 0.3)  # unchanged, but not for long enough yet
    assert third.complete == () and "unchanged for" in third.waiting[0][1]

    fourth = scan_inbox(inbox, out, settle, now=t0 + 2 * settle + 0.4)  # unchanged across scans >= settle apart
    assert fourth.complete == ("reg/0001.jpg",) and fourth.waiting == ()
    assert fourth.signatures["reg/0001.jpg"][0] == 6002

    # the record of the scans: atomic JSON, no temp file left
    data = json.loads(state_path(out).read_text())
    assert data["inbox"] == str(inbox.resolve()) and data["files"]["reg/0001.jpg"]["size"] == 6002
    assert [p.name for p in state_path(out).parent.iterdir() if ".tmp-" in p.name] == []


def test_done_marker_makes_a_folder_complete_at_once(tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    write(inbox / "fonds_a" / "0001.jpg", b"a" * 10)
    write(inbox / "fonds_a" / "sub" / "0002.jpg", b"b" * 10)
    write(inbox / "fonds_a" / ".done", b"")
    write(inbox / "fonds_b" / "0001.jpg", b"c" * 10)  # no marker: must settle
    write(inbox / ".hidden.jpg", b"d")  # hidden: ignored, as by `htr enrich`
    write(inbox / "fonds_b" / ".0002.jpg.part", b"e")
    scan = scan_inbox(inbox, out, settle_seconds=3600)
    assert scan.complete == ("fonds_a/0001.jpg", "fonds_a/sub/0002.jpg")
    assert [p for p, _ in scan.waiting] == ["fonds_b/0001.jpg"]
    assert scan.done_folders == ("fonds_a",)
    # a marker at the top of the inbox: everything is complete
    write(inbox / ".done", b"")
    assert scan_inbox(inbox, out, 3600).complete == ("fonds_a/0001.jpg", "fonds_a/sub/0002.jpg", "fonds_b/0001.jpg")


def test_output_inside_inbox_is_not_scanned(tmp_path):
    inbox = tmp_path / "inbox"
    write(inbox / "0001.jpg", b"a")
    out = inbox / "out"
    write(out / "alto" / "0001.xml", b"<x/>")
    scan = scan_inbox(inbox, out, 0)
    assert scan.complete == ("0001.jpg",)


def test_register_adds_the_watch_command(tmp_path):
    from cli import watch

    ap = argparse.ArgumentParser(prog="htr")
    sub = ap.add_subparsers(dest="command", required=True)
    watch.register(sub)
    args = ap.parse_args(
        [
            "watch",
            str(tmp_path),
            "-o",
            str(tmp_path / "out"),
            "--every",
            "5m",
            "--settle",
            "10",
            "--cluster",
            "tcp://127.0.0.1:8786",
            "--once",
        ]
    )
    assert args.func is watch.run
    assert (args.every, args.settle, args.cluster, args.once, args.model) == (
        "5m",
        10.0,
        "tcp://127.0.0.1:8786",
        True,
        "default",
    )


# --------------------------------------------------------------------------- a real watch run


def _with_alto(folder: Path, name: str) -> None:
    """Copy sample page `name` (image and its ground-truth ALTO, whose lines are re-read) into `folder`."""
    shutil.copy(SAMPLES / f"{name}.jpg", folder / f"{name}.jpg")
    shutil.copy(SAMPLES / "gt" / f"{name}.xml", folder / f"{name}.xml")


@pytest.mark.slow
@pytest.mark.kraken
def test_watch_run_enriches_only_new_complete_pages(tmp_path, prefect_harness):
    """Only complete files are enriched; a page finished later is added; nothing new: no enrichment started.
    The lines come from ALTO copied beside each image (`segmentation_from="alto"`): what is checked is which
    pages the watch hands to enrich-collection, not how Kraken finds lines."""
    from prefect.artifacts import Artifact

    from flows.artifacts import artifact_key
    from flows.watch import watch_inbox

    model = model_or_skip()
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    _with_alto(write(inbox / "lot1" / ".done", b"").parent, "lettre_prefet_1934")
    write(inbox / "lot2" / "acte_vente_1687.jpg", (SAMPLES / "acte_vente_1687.jpg").read_bytes()[:20000])  # half-copied
    settings = {"workers": 1, "recognize": {"model": model.path}, "segmentation_from": "alto"}

    first = watch_inbox(str(inbox), str(out), settings, settle_seconds=3600, recheck=False)
    assert first["status"] == "enriched"
    assert first["summary"]["done"] == 1 and first["summary"]["pages"] == 1
    assert [w["file"] for w in first["waiting"]] == ["lot2/acte_vente_1687.jpg"]
    alto1 = out / "alto" / "lot1_lettre_prefet_1934.xml"  # the id `htr enrich INBOX` gives
    assert alto1.is_file()
    mtime1 = alto1.stat().st_mtime_ns

    # artifacts of the enrich-collection run: final progress, failures table, markdown summary
    summary = Artifact.get(artifact_key(out, "summary"))
    assert summary is not None and "pages/hour" in summary.data and "CPU-seconds per page" in summary.data
    progress = Artifact.get(artifact_key(out, "progress"))
    assert progress is not None and float(progress.data) == 100.0
    assert Artifact.get(artifact_key(out, "waiting")) is not None

    # the copy finishes; the next scan sees it unchanged for `settle` seconds (recheck within the run)
    _with_alto(inbox / "lot2", "acte_vente_1687")
    second = watch_inbox(str(inbox), str(out), settings, settle_seconds=1.0, recheck=True)
    assert second["status"] == "enriched" and second["waiting"] == []
    s = second["summary"]
    assert (s["pages"], s["done"], s["skipped"], s["failed"]) == (2, 1, 1, 0)
    assert alto1.stat().st_mtime_ns == mtime1  # not redone
    assert (out / "alto" / "lot2_acte_vente_1687.xml").is_file()
    pages = {p["page_id"]: p["status"] for p in json.loads((out / "run.json").read_text())["pages"]}
    assert pages == {"lot1_lettre_prefet_1934": "skipped", "lot2_acte_vente_1687": "done"}

    # nothing new: enrich-collection is not even started
    run_json = (out / "run.json").stat().st_mtime_ns
    third = watch_inbox(str(inbox), str(out), settings, settle_seconds=1.0, recheck=False)
    assert third["status"] == "unchanged" and third["complete"] == 4  # 2 images, each with its ALTO
    assert (out / "run.json").stat().st_mtime_ns == run_json


@pytest.mark.slow
def test_htr_watch_serves_a_schedule_with_its_own_server_and_stops_cleanly(tmp_path):
    """`htr watch` without PREFECT_API_URL: local server + Prefect serve; the first scan runs within seconds."""
    import signal
    import subprocess
    import sys

    psutil = pytest.importorskip("psutil")
    model = model_or_skip()
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    write(inbox / "lot" / "inventaire.txt", b"inventaire sommaire\n")  # not an image: no Kraken needed
    write(inbox / "lot" / ".done", b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    code = (
        "import argparse, sys; from cli import watch; ap = argparse.ArgumentParser(prog='htr'); "
        "sub = ap.add_subparsers(dest='command', required=True); watch.register(sub); "
        "a = ap.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    cmd = [
        sys.executable,
        "-c",
        code,
        "watch",
        str(inbox),
        "-o",
        str(out),
        "--every",
        "1h",
        "--settle",
        "1",
        "--model",
        model.path,
    ]
    with open(tmp_path / "watch.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        children: dict[int, psutil.Process] = {}
        try:
            deadline = time.time() + 150
            while time.time() < deadline and not (out / "run.json").exists():
                assert proc.poll() is None, (tmp_path / "watch.log").read_text()[-3000:]
                children.update({c.pid: c for c in psutil.Process(proc.pid).children(recursive=True)})
                time.sleep(1)
            assert (out / "run.json").exists(), (tmp_path / "watch.log").read_text()[-3000:]
            doc = json.loads((out / "run.json").read_text())
            assert doc["ignored"][0]["source"].endswith("lot/inventaire.txt")
        finally:
            proc.send_signal(signal.SIGTERM)  # as systemd or docker stop would
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
    assert rc == 0, (tmp_path / "watch.log").read_text()[-3000:]
    # Process objects, not bare pids: a pid reused by an unrelated process is not a leftover child
    _, alive = psutil.wait_procs(list(children.values()), timeout=15)
    assert not [p.pid for p in alive if _still_there(p)]


def _still_there(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # the session's Prefect harness: about 10 s to start
def test_artifacts_progress_is_throttled_and_failures_are_listed(tmp_path, prefect_harness, monkeypatch):
    """Progress is updated at most once per `every_s` of the publisher's clock (a fake clock here, one page
    a second), failed pages go to a table, the markdown summary has the figures."""
    from types import SimpleNamespace

    from prefect import flow
    from prefect.artifacts import Artifact

    from flows import artifacts
    from flows.artifacts import RunArtifacts, artifact_key
    from htr.types import PageResult

    out = tmp_path / "Registres 1850"
    clock = [1000.0]
    monkeypatch.setattr(artifacts, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    @flow
    def fake_run() -> tuple[int, dict]:
        pub = RunArtifacts(out, every_s=5.0)
        pub("plan", SimpleNamespace(pending=[None] * 10, skipped=[None] * 2))
        for i in range(10):
            clock[0] += 1.0  # page i ends 1 s after the previous one
            failed = i == 3
            pub(
                "page",
                PageResult(
                    f"p{i}",
                    f"/in/p{i}.jpg",
                    0,
                    "",
                    "failed" if failed else "done",
                    error="/in/p3.jpg: truncated JPEG" if failed else None,
                ),
            )
        updates = pub.updates
        pub.finish(
            {
                "pages": 12,
                "done": 9,
                "skipped": 2,
                "failed": 1,
                "failure_ratio": 1 / 12,
                "ignored": 0,
                "wall_seconds": 1.0,
                "pages_per_hour": 32400.0,
                "worker_seconds_per_page": 0.1,
            }
        )
        return updates, {"late": pub("page", None)}  # a finished publisher ignores late events

    updates, _ = fake_run()
    assert updates == 2  # 10 pages 1 s apart, one update every 5 s: after pages 5 and 10
    assert artifact_key(out, "summary") == "htr-registres-1850-summary"
    progress = Artifact.get(artifact_key(out, "progress"))
    assert float(progress.data) == 100.0
    table = Artifact.get(artifact_key(out, "failures"))
    assert "truncated JPEG" in str(table.data) and "p3" in str(table.data)
    md = Artifact.get(artifact_key(out, "summary")).data
    assert "| failed | 1 (8.3%) |" in md and "CPU-seconds per page" in md and "p3" in md
