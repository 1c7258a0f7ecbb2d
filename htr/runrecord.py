"""OUT/run.json kept up to date while a run goes, and report.html at its end.

run.json is rewritten atomically when the run's first page finishes, then every `every_pages`
finished pages or `every_s` seconds, so a watcher, or whoever looks at a killed run, sees where
it stood. Pages not processed (yet) are
listed with status "pending". Top-level `status`: running, completed, failed (more failed
pages than --max-failures allows), stopped (the run took no new page: disk full, or failure
certain); `stopped` says why. A write that fails (disk full) is remembered, never raised.

A run keeps OUT/.state/reserve (RESERVE_BASE + RESERVE_PER_PAGE bytes per page) while it goes:
when the disk fills up, the reserve is given back so that run.json and report.html can still
be written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from htr import pipeline, report
from htr.config import RunSettings
from htr.errors import is_disk_full
from htr.types import PageResult

RESERVE_BASE = 256 * 1024
RESERVE_PER_PAGE = 1536  # run.json (~600 B) and report.html (~300 B) per page, with room to spare
RESUME_HINT = "run the same command again to resume: pages done are kept, the others are redone"


class RunRecord:
    """The run.json of one run, written as pages finish; `finish` writes it and report.html once more."""

    def __init__(
        self,
        plan,
        settings: RunSettings,
        every_pages: int = 10,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.plan = plan
        self.settings = settings
        self.every_pages, self.every_s, self.clock = every_pages, every_s, clock
        self.results: dict[str, PageResult] = {r.page_id: r for r in plan.skipped}
        self.unwritten_files: dict[str, str] = {}  # path -> why its last write failed
        self.disk_full = False  # a write failed for want of space
        self.t0 = self.last = clock()
        self.unwritten = 0
        self.reserve = Path(plan.output) / ".state" / "reserve"
        _reserve(self.reserve, RESERVE_BASE + RESERVE_PER_PAGE * len(plan.refs))
        self.write("running")

    def listen(self, kind: str, payload: object) -> None:
        """A flows.enrich listener: ("page", PageResult) per finished page."""
        if kind == "page":
            assert isinstance(payload, PageResult)
            self.add(payload)

    def add(self, result: PageResult) -> None:
        self.results[result.page_id] = result
        self.unwritten += 1
        first = len(self.results) == len(self.plan.skipped) + 1  # the first page of this run: it is going
        if first or self.unwritten >= self.every_pages or self.clock() - self.last >= self.every_s:
            self.write("running")

    def ordered(self) -> list[PageResult]:
        """Every page of the plan in collection order; "pending" for those without a result."""
        keys = self.plan.keys
        return [
            self.results.get(r.id) or PageResult(r.id, r.source, r.index, r.sha256, "pending", key=keys.get(r.id, ""))
            for r in self.plan.refs
        ]

    def document(self, status: str, stopped: str | None = None, wall_s: float | None = None) -> dict:
        """The run.json fields besides pages and ignored files."""
        wall = self.clock() - self.t0 if wall_s is None else wall_s
        return {
            "output": str(Path(self.plan.output).resolve()),
            "started": self.plan.started,
            "status": status,
            **({"stopped": stopped, "resume": RESUME_HINT} if stopped else {}),
            "software": {"htr-enrich": pipeline.software_version(), "kraken": pipeline.kraken_version()},
            "settings": self.settings.model_dump(),
            "models": self.plan.models.to_dict(),
            "summary": report.summary(self.ordered(), list(self.plan.ignored), wall),
        }

    def write(self, status: str, stopped: str | None = None, wall_s: float | None = None, last: bool = False) -> dict:
        """Write run.json now (atomically); returns the document written (or that could not be).

        `last`: the run's final write, which may use the reserve (no page is running any more).
        """
        doc = self.document(status, stopped, wall_s)
        self._attempt(
            Path(self.plan.output) / "run.json",
            lambda: report.write_run_json(Path(self.plan.output), doc, self.ordered(), list(self.plan.ignored)),
            last,
        )
        self.last, self.unwritten = self.clock(), 0
        return doc

    def _attempt(self, path: Path, write: Callable[[], None], use_reserve: bool) -> None:
        """Run `write`; on a full disk (with `use_reserve`) give the reserve back and try once more."""
        for attempt in (1, 2):
            try:
                write()
                self.unwritten_files.pop(str(path), None)
                return
            except OSError as e:
                self.disk_full = self.disk_full or is_disk_full(e)
                self.unwritten_files[str(path)] = f"{path}: not written: {e.strerror or e}"
                if attempt == 2 or not (use_reserve and is_disk_full(e) and self.reserve.exists()):
                    return
                self.reserve.unlink(missing_ok=True)

    @property
    def errors(self) -> list[str]:
        """Files whose last write failed, one line each."""
        return list(self.unwritten_files.values())

    def finish(
        self, status: str, stopped: str | None = None, wall_s: float | None = None, fault: str | None = None
    ) -> dict:
        """Write run.json and report.html (each if it can); returns the summary, with `status`, `stopped`
        and `fault` ("disk-full" when that stopped the run)."""
        doc = self.write(status, stopped, wall_s, last=True)
        self._attempt(
            Path(self.plan.output) / "report.html",
            lambda: report.write_report(Path(self.plan.output), doc, self.ordered(), list(self.plan.ignored)),
            True,
        )
        self.reserve.unlink(missing_ok=True)
        return {
            **doc["summary"],
            "status": status,
            **({"stopped": stopped, "fault": fault} if stopped else {}),
            **({"unwritten": list(self.errors)} if self.errors else {}),
        }


def _reserve(path: Path, size: int) -> None:
    """Hold `size` bytes of the disk in `path` (best effort: a disk already too full gets no reserve)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            try:
                os.posix_fallocate(fh.fileno(), 0, size)
            except (AttributeError, OSError):
                fh.write(b"\0" * size)
    except OSError:
        path.unlink(missing_ok=True)
