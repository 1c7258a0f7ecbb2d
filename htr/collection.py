"""A collection run without the orchestration: plan what to do, then record what was done."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from htr import atomic, images, pipeline, report, state
from htr.config import RunSettings
from htr.types import PageRef, PageResult


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


def plan(sources: list[str], output: str | Path, settings: RunSettings) -> Plan:
    """Discover pages, resolve models, compute resume keys and split done / to do."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic.sweep(out)  # temp files of a killed run
    running = out / ".state" / "running"
    if running.is_dir():
        for p in running.iterdir():
            p.unlink(missing_ok=True)
    if settings.segmentation_from:
        from htr import reuse

        refs, ignored = reuse.discover(sources, settings.segmentation_from)
    else:
        cache_path = out / ".state" / "hashes.json"
        cache = {} if settings.force else _load_json(cache_path)
        refs, ignored = images.discover(sources, cache)
        atomic.write_text(cache_path, json.dumps(cache))
    models = pipeline.resolve_models(settings)
    hashes = models.hashes()
    keys = {r.id: state.page_key(r, hashes, settings) for r in refs}
    skipped, pending = [], []
    for r in refs:
        prev = None if settings.force else state.is_done(out, r.id, keys[r.id])
        if prev is not None:
            skipped.append(PageResult(**{**prev.to_dict(), "status": "skipped", "source": r.source}))
        else:
            pending.append(r)
    started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return Plan(str(out), tuple(refs), tuple(ignored), models, keys, tuple(skipped), tuple(pending), started)


def worker_died(ref: PageRef, key: str, out: Path, why: str) -> PageResult:
    """Record a page whose worker process died; the marker keeps it from being skipped next time."""
    res = PageResult(ref.id, ref.source, ref.index, ref.sha256, "failed", error=f"{ref.source}: {why}", key=key)
    state.write_marker(out, res)
    return res


def finish(p: Plan, results: list[PageResult], settings: RunSettings, wall_s: float) -> dict:
    """Write run.json and report.html; returns the run summary."""
    out = Path(p.output)
    by_id = {r.page_id: r for r in [*p.skipped, *results]}
    ordered = [by_id[r.id] for r in p.refs if r.id in by_id]
    run = {
        "output": str(out.resolve()),
        "started": p.started,
        "software": {"htr-enrich": pipeline.software_version(), "kraken": pipeline.kraken_version()},
        "settings": settings.model_dump(),
        "models": p.models.to_dict(),
        "summary": report.summary(ordered, list(p.ignored), wall_s),
    }
    report.write_run_json(out, run, ordered, list(p.ignored))
    report.write_report(out, run, ordered, list(p.ignored))
    return run["summary"]


class Indexer:
    """Keeps OUT/index.sqlite in step with the ALTO on disk; one writer: the flow's own process."""

    def __init__(self, out: str | Path):
        from htr.index.store import Index, index_path, sync

        self.out = Path(out)
        self.report = sync(self.out)  # repairs what a killed run left
        self.index = Index.open(index_path(self.out))
        self.errors: list[str] = []

    def listen(self, kind: str, payload: object) -> None:
        if kind == "page":
            self.page(payload)

    def page(self, result: PageResult) -> None:
        """Index a page as soon as its ALTO is written."""
        from htr.errors import HTRError

        if result.status != "done":
            return
        for pid in result.output_ids:
            try:
                self.index.replace_page(pid, state.alto_path(self.out, pid))
            except HTRError as e:
                self.errors.append(str(e))
        for gone in {result.page_id, f"{result.page_id}-L", f"{result.page_id}-R"} - set(result.output_ids):
            self.index.remove_page(gone)

    def close(self) -> None:
        from htr.index.store import sync

        self.index.close()
        sync(self.out)  # pages whose ALTO is gone, anything missed
