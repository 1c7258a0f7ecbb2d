"""A collection run without the orchestration: plan what to do, then record what was done."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from htr import atomic, images, pipeline, state
from htr.config import RunSettings
from htr.errors import HTRError, is_disk_full
from htr.types import PageRef, PageResult, part_ids


@dataclass(frozen=True)
class Plan:
    """What a run will do: every page, its resume key, and which pages are already done."""

    output: str
    refs: tuple[PageRef, ...]
    ignored: tuple[tuple[str, str], ...]
    models: pipeline.Models
    keys: dict[str, str] = field(default_factory=dict)
    skipped: tuple[PageResult, ...] = ()
    pending: tuple[PageRef, ...] = ()
    started: str = ""


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


Progress = Callable[[str, int, int], None]  # (what, done, total) while planning


def sweep(out: Path) -> None:
    """Remove what a killed run left: temp files, normalised page images, in-flight markers.

    Call it holding the run lock (htr.runlock): no other run can be using these files.
    """
    atomic.sweep(out)
    shutil.rmtree(state.work_dir(out), ignore_errors=True)
    running = out / ".state" / "running"
    if running.is_dir():
        for p in running.iterdir():
            p.unlink(missing_ok=True)


def plan(sources: list[str], output: str | Path, settings: RunSettings, progress: Progress | None = None) -> Plan:
    """Discover pages, resolve models, compute resume keys and split done / to do.

    `progress("finding pages" | "checking pages done before", done, total)` is called as it goes:
    on a large collection both phases take minutes.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    sweep(out)
    tell = progress or (lambda what, done, total: None)
    if settings.segmentation_from:
        from htr import reuse

        refs, ignored = reuse.discover(sources, settings.segmentation_from)
    else:
        cache_path = out / ".state" / "hashes.json"
        cache = {} if settings.force else _load_json(cache_path)
        refs, ignored = images.discover(sources, cache, lambda i, n: tell("finding pages", i, n))
        atomic.write_text(cache_path, json.dumps(cache))
    models = pipeline.resolve_models(settings)
    hashes = models.hashes()
    keys = {r.id: state.page_key(r, hashes, settings) for r in refs}
    skipped, pending = [], []
    for i, r in enumerate(refs):
        tell("checking pages done before", i, len(refs))
        prev = None if settings.force else state.is_done(out, r.id, keys[r.id])
        if prev is not None:
            skipped.append(PageResult(**{**prev.to_dict(), "status": "skipped", "source": r.source}))
        else:
            pending.append(r)
    tell("checking pages done before", len(refs), len(refs))
    started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return Plan(str(out), tuple(refs), tuple(ignored), models, keys, tuple(skipped), tuple(pending), started)


def worker_died(ref: PageRef, key: str, out: Path, why: str) -> PageResult:
    """Record a page whose worker process died; the marker keeps it from being skipped next time."""
    res = PageResult(ref.id, ref.source, ref.index, ref.sha256, "failed", error=f"{ref.source}: {why}", key=key)
    try:
        state.write_marker(out, res)
    except OSError as e:  # no marker: the page is redone next time anyway
        return replace(res, fault="disk-full" if is_disk_full(e) else None)
    return res


EARLY_STOP_MIN_PAGES = 20  # a smaller collection always runs to its end: its good pages are not held back


class Budget:
    """Decides when a run stops taking new pages: the output disk is full, or too many pages failed.

    `total`: pages of the collection (done before included); `to_do`: pages this run processes.
    "Too many": more failed pages than `max_failures` allows of the whole collection, so the run
    ends failed whatever the remaining pages do (checked from EARLY_STOP_MIN_PAGES pages on).
    """

    def __init__(self, total: int, to_do: int, max_failures: float):
        self.total, self.to_do, self.max_failures = total, to_do, max_failures
        self.processed = self.failed = 0
        self.reason: str | None = None
        self.fault: str | None = None  # "disk-full" when that is why it stopped

    def add(self, result: PageResult) -> None:
        self.processed += 1
        if result.status != "failed":
            return
        self.failed += 1
        if result.fault == "disk-full":
            self.stop(f"the output disk is full ({result.error})", "disk-full")
        elif (
            self.failed > self.max_failures * self.total
            and min(self.to_do, EARLY_STOP_MIN_PAGES) <= self.processed < self.to_do
        ):
            self.stop(
                f"{self.failed} of {self.total} pages failed, more than --max-failures "
                f"{self.max_failures:.0%} allows whatever the other pages do"
            )

    def stop(self, reason: str, fault: str | None = None) -> None:
        if self.reason is None:
            self.reason, self.fault = reason, fault

    @property
    def stopped(self) -> bool:
        return self.reason is not None


class Indexer:
    """Keeps OUT/index.sqlite in step with the ALTO on disk; one writer: the flow's own process."""

    def __init__(self, out: str | Path):
        from htr.index.store import Index, index_path, sync

        self.out = Path(out)
        self.report = sync(self.out)  # repairs what a killed run left
        self.index = Index.open(index_path(self.out))
        self.errors: list[str] = []
        self.disk_full = False

    def listen(self, kind: str, payload: object) -> None:
        if kind == "page":
            assert isinstance(payload, PageResult)
            self.page(payload)

    def page(self, result: PageResult) -> None:
        """Index a page as soon as its ALTO is written."""
        if result.status != "done":
            return
        try:
            for pid in result.output_ids:
                try:
                    self.index.replace_page(pid, state.alto_path(self.out, pid))
                except HTRError as e:
                    self.errors.append(str(e))
            for gone in set(part_ids(result.page_id)) - set(result.output_ids):
                self.index.remove_page(gone)
        except (HTRError, sqlite3.Error, OSError) as e:  # disk full: the next `htr index --sync` repairs it
            self.disk_full = self.disk_full or is_disk_full(e)
            self.errors.append(f"{self.out / 'index.sqlite'}: {e}")

    def close(self) -> None:
        from htr.index.store import sync

        try:
            self.index.close()
            sync(self.out)  # pages whose ALTO is gone, anything missed
        except (HTRError, sqlite3.Error, OSError) as e:
            self.disk_full = self.disk_full or is_disk_full(e)
            self.errors.append(f"{self.out / 'index.sqlite'}: not brought up to date: {e}")
