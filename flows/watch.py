"""Scheduled enrichment of an inbox folder: the `watch-inbox` flow behind `htr watch INBOX -o OUT --every 15m`
(the command itself is cli/watch.py, which imports this module, and so Prefect, only when it runs).

Every scan enriches the files of INBOX that are *complete*, and only those;
the resume keys of enrich-collection make each run redo only what is new or
changed.

When is a file complete?
------------------------
A file is complete when

* its size and modification time (ns) are unchanged between two scans at
  least `settle_seconds` apart (default 30 s): the scan records, per file, the
  signature it saw and since when; a file whose signature changes starts
  again from zero. `settle_seconds=0` trusts every file at first sight; or
* a folder above it (up to and including INBOX itself) holds a file named
  `.done`: then every file under that folder is complete at once. Copy a
  collection, then `touch .done` in its folder, and it is processed in full at
  the next scan, never half.

Files not yet complete are left for the next scan: the run logs them and
publishes them as a table artifact. The scan's record is
OUT/.state/watch.json, written atomically (temp file + rename) after each scan.
Hidden files and folders (name starting with ".") are ignored, as by
`htr enrich`; so is OUT when it lies inside INBOX.

Page ids are those `htr enrich INBOX` gives: the run enriches
OUT/.state/watch/inbox/, a mirror of INBOX made of symbolic links to its
complete files (run.json names pages by their path in that mirror).

A run that finds the same complete files (same sizes and mtimes), the same
settings and models as the previous run, which had no failed page, does not
start enrich-collection at all (no re-hashing of the whole inbox). Only one
run works on an OUT at a time (a lock file, OUT/.state/watch.lock): a run that
finds it taken returns at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow

from htr import atomic
from htr.errors import ConfigError, HTRError, InputError, RunFailed, RunLocked

DONE_MARKER = ".done"
STATE_VERSION = 1


def state_path(output: str | Path) -> Path:
    return Path(output) / ".state" / "watch.json"


def view_path(output: str | Path) -> Path:
    return Path(output) / ".state" / "watch" / "inbox"


def parse_every(text: str | float | int) -> float:
    """'15m', '1h30m', '90s', '2d', '45' (seconds) -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", s):
            seconds = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", s)
            if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([dhms])", "", s).strip():
                raise ConfigError(f"invalid interval {text!r}: use e.g. 15m, 1h, 90s, 1h30m")
            unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
            seconds = sum(float(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"invalid interval {text!r}: must be more than 0 s")
    return seconds


# --------------------------------------------------------------------------- scan


@dataclass(frozen=True)
class Scan:
    """One look at the inbox: which files are complete, which wait, and why."""

    inbox: str
    complete: tuple[str, ...]  # posix paths relative to the inbox, sorted
    waiting: tuple[tuple[str, str], ...] = ()  # (relative path, why it is not complete yet)
    done_folders: tuple[str, ...] = ()  # folders holding a .done marker ("." is the inbox)
    signatures: dict[str, tuple[int, int]] = field(default_factory=dict)  # complete files: (size, mtime_ns)
    wait_s: float = 0.0  # seconds until every waiting file that stays unchanged becomes complete


def load_state(output: str | Path) -> dict:
    try:
        data = json.loads(state_path(output).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else {}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_state(output: str | Path, data: dict) -> None:
    atomic.write_text(state_path(output), json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))


def _walk_inbox(inbox: Path, skip: Path | None) -> tuple[list[str], set[str]]:
    """(files as posix paths relative to inbox, folders holding .done) — hidden entries skipped."""
    files: list[str] = []
    done: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(inbox):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        rel_dir = here.relative_to(inbox).as_posix()
        if DONE_MARKER in filenames:
            done.add(rel_dir)
        for name in filenames:
            if not name.startswith("."):
                files.append((here / name).relative_to(inbox).as_posix())
    return sorted(files), done


def _under_done(rel: str, done: set[str]) -> bool:
    if "." in done:
        return True
    parts = rel.split("/")[:-1]
    return any("/".join(parts[:i]) in done for i in range(1, len(parts) + 1))


def scan_inbox(inbox: str | Path, output: str | Path, settle_seconds: float = 30.0, now: float | None = None) -> Scan:
    """Look at INBOX once, decide which files are complete, record what was seen in OUT/.state/watch.json."""
    inbox = Path(inbox).resolve()
    if not inbox.is_dir():
        raise InputError("inbox is not a folder", path=str(inbox))
    out = Path(output).resolve()
    now = time.time() if now is None else now
    state = load_state(out)
    prev = state.get("files", {}) if state.get("inbox") == str(inbox) else {}
    files, done = _walk_inbox(inbox, out if out.is_relative_to(inbox) else None)

    seen: dict[str, dict] = {}
    complete: list[str] = []
    waiting: list[tuple[str, str]] = []
    signatures: dict[str, tuple[int, int]] = {}
    wait_s = 0.0
    for rel in files:
        try:
            st = os.stat(inbox / rel)
        except OSError:  # vanished (moved away) between the walk and now
            continue
        sig = (st.st_size, st.st_mtime_ns)
        old = prev.get(rel)
        same = old is not None and (old.get("size"), old.get("mtime_ns")) == sig
        since = float(old["since"]) if old is not None and same else now
        seen[rel] = {"size": sig[0], "mtime_ns": sig[1], "since": since}
        if _under_done(rel, done) or now - since >= settle_seconds:
            complete.append(rel)
            signatures[rel] = sig
            continue
        if old is None:
            why = f"new: first seen now; complete once unchanged for {settle_seconds:g} s"
        elif not same:
            why = f"changed since the last scan (size {old.get('size')} -> {sig[0]} bytes)"
        else:
            why = f"unchanged for {now - since:.0f} s of the {settle_seconds:g} s required"
        waiting.append((rel, why))
        wait_s = max(wait_s, settle_seconds - (now - since))

    _write_state(
        out,
        {
            **state,
            "version": STATE_VERSION,
            "inbox": str(inbox),
            "settle_seconds": settle_seconds,
            "scanned_at": dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="seconds"),
            "files": seen,
            **({} if state.get("inbox") == str(inbox) else {"last_enrich": {}}),
        },
    )
    return Scan(str(inbox), tuple(complete), tuple(waiting), tuple(sorted(done)), signatures, max(0.0, wait_s))


def build_view(scan: Scan, output: str | Path) -> Path:
    """OUT/.state/watch/inbox: the inbox's complete files as symbolic links, same relative paths."""
    view = view_path(output)
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True, exist_ok=True)
    for rel in scan.complete:
        link = view / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(scan.inbox) / rel, link)
    return view


@contextlib.contextmanager
def _exclusive(output: Path) -> Iterator[bool]:
    """Hold OUT/.state/watch.lock for this run; yields False when another run holds it."""
    import fcntl

    lock = output / ".state" / "watch.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fingerprint(scan: Scan, settings: dict | None) -> str:
    """What the last enrichment depended on: complete files' signatures, output settings, model hashes."""
    from htr import pipeline, state
    from htr.config import RunSettings, digest

    cfg = RunSettings(**(settings or {}))
    return digest(
        {
            "files": {k: list(v) for k, v in scan.signatures.items()},
            "settings": cfg.output_settings(),
            "models": pipeline.resolve_models(cfg).hashes(),
            "pipeline": state.PIPELINE_VERSION,
        }
    )


def _publish_waiting(output: Path, scan: Scan) -> None:
    from prefect.artifacts import create_table_artifact

    from flows.artifacts import artifact_key

    rows = [{"file": rel, "why": why} for rel, why in scan.waiting] or [{"file": "", "why": "no file waiting"}]
    try:
        create_table_artifact(
            table=rows,
            key=artifact_key(output, "waiting"),
            description=f"{len(scan.waiting)} file(s) of {scan.inbox} not complete yet: left for the next scan",
        )
    except Exception as e:  # pragma: no cover - API hiccup: the log below still says it
        from prefect import get_run_logger

        get_run_logger().warning("could not publish the waiting-files artifact: %s", e)


@flow(name="watch-inbox", log_prints=True)
def watch_inbox(
    inbox: str,
    output: str,
    settings: dict | None = None,
    settle_seconds: float = 30.0,
    cluster: str | None = None,
    recheck: bool = True,
) -> dict:
    """Enrich the complete files of `inbox` into `output` (see flows/watch.py for "complete").

    `recheck`: when some files are not complete yet, wait until they could be
    (at most `settle_seconds`) and look once more, instead of leaving them for
    the next scheduled run.
    """
    from prefect import get_run_logger

    from flows.enrich import enrich_collection

    log = get_run_logger()
    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out) as mine:
        if not mine:
            log.warning("another watch run is still working on %s: nothing done", out)
            return {"status": "busy", "complete": 0, "waiting": [], "summary": None}
        scan = scan_inbox(inbox, out, settle_seconds)
        if scan.waiting and recheck and settle_seconds > 0:
            log.info("%d file(s) not complete yet; looking again in %.0f s", len(scan.waiting), scan.wait_s)
            time.sleep(scan.wait_s + 0.05)
            scan = scan_inbox(inbox, out, settle_seconds)
        for rel, why in scan.waiting[:100]:
            log.info("left for the next scan: %s (%s)", rel, why)
        if len(scan.waiting) > 100:
            log.info("... and %d more file(s) left for the next scan", len(scan.waiting) - 100)
        _publish_waiting(out, scan)
        waiting = [{"file": rel, "why": why} for rel, why in scan.waiting]
        result = {"complete": len(scan.complete), "waiting": waiting, "summary": None}
        if not scan.complete:
            log.info("no complete file in %s yet", scan.inbox)
            return {**result, "status": "empty"}
        fingerprint = _fingerprint(scan, settings)
        last = load_state(out).get("last_enrich") or {}
        if last.get("fingerprint") == fingerprint and not last.get("failed"):
            log.info(
                "nothing new or changed among %d complete file(s): enrich-collection not started", len(scan.complete)
            )
            return {**result, "status": "unchanged"}
        view = build_view(scan, out)
        try:
            summary = enrich_collection([str(view)], str(out), settings, cluster)
        except RunFailed as e:  # too many failed pages, or stopped (disk full): recorded, tried again next scan
            log.warning("enrich-collection ended failed: %s", e.message)
            summary = e.summary
        except RunLocked as e:  # an `htr enrich` on the same output folder: the next scan tries again
            log.warning("%s: nothing done", e)
            return {**result, "status": "busy"}
        data = load_state(out)
        data["last_enrich"] = {
            "fingerprint": fingerprint,
            "failed": summary.get("failed", 0) + summary.get("pending", 0),  # either way: run again next scan
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        _write_state(out, data)
        return {**result, "status": "enriched", "summary": summary}


# --------------------------------------------------------------------------- serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scheduling_api(log_file: Path | None = None, timeout: float = 180.0) -> Iterator[str]:
    """The configured Prefect API, or a local `prefect server start` (with its scheduler) for this process.

    The ephemeral API `htr enrich` uses runs no scheduler, so scheduled runs need
    a real server: with no PREFECT_API_URL, one is started on 127.0.0.1 (SQLite
    under PREFECT_HOME, UI included) and stopped on exit.
    """
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        yield url
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise HTRError(
                    f"the local Prefect server exited with status {proc.returncode}", path=str(log_file or "")
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HTRError(f"the local Prefect server did not answer within {timeout:.0f} s")
            time.sleep(0.5)
        from flows.runtime import use_api

        with use_api(url):
            yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not isinstance(log, int):  # a file, not subprocess.DEVNULL
            log.close()


def serve_watch(
    inbox: str,
    output: str,
    settings: dict | None = None,
    every_s: float | None = 900.0,
    cron: str | None = None,
    timezone: str | None = None,
    settle_seconds: float = 30.0,
    cluster: str | None = None,
    name: str | None = None,
) -> None:
    """Serve the watch-inbox flow on a schedule (blocks; Ctrl-C stops and pauses the schedule)."""
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    from flows.artifacts import artifact_key

    if cron:
        schedule = Cron(cron, timezone=timezone)
    else:  # the first scan runs in a few seconds (a schedule never creates runs in the past), then every `every_s`
        anchor = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=15)
        schedule = Interval(dt.timedelta(seconds=every_s or 900.0), anchor_date=anchor, timezone=timezone)
    watch_inbox.serve(
        name=name or artifact_key(output, "watch").removeprefix("htr-"),
        schedules=[schedule],
        parameters={
            "inbox": str(Path(inbox).resolve()),
            "output": str(Path(output).resolve()),
            "settings": settings or {},
            "settle_seconds": settle_seconds,
            "cluster": cluster,
        },
        limit=1,  # never two scans of the same inbox at once (the lock file guards it too)
        entrypoint_type=EntrypointType.MODULE_PATH,  # flows.watch.watch_inbox: works from any folder
    )
