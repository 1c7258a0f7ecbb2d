"""Prefect artifacts of an `enrich-collection` run: progress, failed pages, summary.

`RunArtifacts` is a listener of flows.enrich (main process only): it creates a
progress artifact when the plan is known, updates it as pages finish (at most
every `every_s` seconds, so thousands of pages do not flood the API), and at
the end publishes a table of the failed pages with their reasons and a
markdown summary (pages, failures, pages/hour, CPU-seconds per page).

Artifacts are a view for people: a failure to publish one is logged and never
fails the run.
"""

from __future__ import annotations

import logging
import re
import resource
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

logger = logging.getLogger("htr.artifacts")


def artifact_key(output: str | Path, what: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) naming the collection's output folder."""
    name = Path(output).resolve().name.lower()
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40].strip("-") or "out"
    return f"htr-{slug}-{what}"


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished (waited-for) children: the local worker processes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def _current_flow_run_id() -> UUID | None:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx.flow_run.id if ctx and ctx.flow_run else None


T = TypeVar("T")


def _sync(value: T | Coroutine[Any, Any, T]) -> T:
    """What a Prefect artifact function returned: called from sync code (as here), the value itself."""
    assert not isinstance(value, Coroutine), "called from async code"
    return value


class RunArtifacts:
    """Listener publishing one run's artifacts. Call `finish(summary)` once the run is recorded."""

    def __init__(self, output: str | Path, cluster: str | None = None, every_s: float = 5.0) -> None:
        self.output = str(output)
        self.cluster = cluster
        self.every_s = every_s
        self.flow_run_id = _current_flow_run_id()
        self.cpu0 = _cpu_seconds()
        self.total = 0
        self.skipped = 0
        self.finished = 0
        self.failed: list[dict[str, Any]] = []
        self.progress_id: UUID | None = None
        self.last_update = 0.0
        self.updates = 0
        self.closed = False
        self._warned = False

    # ------------------------------------------------------------------ listener
    def __call__(self, kind: str, payload: object) -> None:
        if self.closed or _current_flow_run_id() != self.flow_run_id:
            return  # left behind by a run that raised: not ours any more
        try:
            if kind == "plan":
                self._on_plan(payload)
            elif kind == "page":
                self._on_page(payload)
        except Exception as e:  # pragma: no cover - API hiccup: publishing is best effort, never fails the run
            self._warn(e)

    def _warn(self, e: Exception) -> None:
        if not self._warned:
            logger.warning("could not publish Prefect artifact: %s: %s", type(e).__name__, e)
            self._warned = True

    def _description(self) -> str:
        return (
            f"{self.finished}/{self.total} page(s) processed ({len(self.failed)} failed) "
            f"into {self.output}; {self.skipped} already up to date"
        )

    def _on_plan(self, plan: Any) -> None:
        from prefect.artifacts import create_progress_artifact

        self.total = len(plan.pending)
        self.skipped = len(plan.skipped)
        self.progress_id = _sync(
            create_progress_artifact(
                progress=0.0 if self.total else 100.0,
                key=artifact_key(self.output, "progress"),
                description=self._description(),
            )
        )
        self.last_update = time.monotonic()

    def _on_page(self, result: Any) -> None:
        self.finished += 1
        if result.status == "failed":
            self.failed.append({"page": result.page_id, "source": result.source, "error": result.error or ""})
        now = time.monotonic()
        if self.progress_id is not None and now - self.last_update >= self.every_s:
            self._update_progress()
            self.last_update = now

    def _update_progress(self) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.progress_id is None:  # no progress artifact was made
            return
        pct = 100.0 * self.finished / self.total if self.total else 100.0
        update_progress_artifact(self.progress_id, min(100.0, pct), description=self._description())
        self.updates += 1

    # ------------------------------------------------------------------ end of run
    def finish(self, summary: dict) -> dict[str, UUID | None]:
        """Final progress, failed-pages table and markdown summary; returns the artifact ids."""
        self.closed = True
        ids: dict[str, UUID | None] = {"progress": self.progress_id, "failures": None, "summary": None}
        try:
            from prefect.artifacts import create_markdown_artifact, create_table_artifact

            if self.progress_id is not None:
                self._update_progress()
            ids["failures"] = _sync(
                create_table_artifact(
                    table=self.failed or [{"page": "", "source": "", "error": "no failed page"}],
                    key=artifact_key(self.output, "failures"),
                    description=f"{len(self.failed)} failed page(s) in {self.output}",
                )
            )
            ids["summary"] = _sync(
                create_markdown_artifact(
                    markdown=self.markdown(summary),
                    key=artifact_key(self.output, "summary"),
                    description=f"enrich-collection summary for {self.output}",
                )
            )
        except Exception as e:  # pragma: no cover - API hiccup
            self._warn(e)
        return ids

    def markdown(self, summary: dict) -> str:
        processed = summary.get("done", 0) + summary.get("failed", 0)  # failed pages are never skipped: all ran now
        cpu = _cpu_seconds() - self.cpu0
        if self.cluster:
            cpu_line = f"not measured here: pages ran on the Dask cluster {self.cluster}"
        elif processed:
            cpu_line = f"{cpu / processed:.1f} (this process and its worker processes, {cpu:.0f} s in all)"
        else:
            cpu_line = "n/a (no page processed)"
        lines = [
            f"# enrich-collection: {self.output}",
            "",
            "| | |",
            "|---|---|",
            f"| pages | {summary.get('pages', 0)} |",
            f"| processed now | {summary.get('done', 0)} |",
            f"| already up to date (skipped) | {summary.get('skipped', 0)} |",
            f"| failed | {summary.get('failed', 0)} ({summary.get('failure_ratio', 0.0):.1%}) |",
            f"| files ignored (not images) | {summary.get('ignored', 0)} |",
            f"| wall time | {summary.get('wall_seconds', 0)} s |",
            f"| pages/hour | {summary.get('pages_per_hour', 0.0)} |",
            f"| worker seconds per page | {summary.get('worker_seconds_per_page')} |",
            f"| CPU-seconds per page | {cpu_line} |",
        ]
        if self.failed:
            lines += ["", "## Failed pages", ""]
            lines += [f"- `{f['page']}`: {f['error']}" for f in self.failed[:50]]
            if len(self.failed) > 50:
                lines.append(f"- … and {len(self.failed) - 50} more: see the failures table and run.json")
        lines += [
            "",
            f"Details per page: `{Path(self.output) / 'run.json'}`; report: `{Path(self.output) / 'report.html'}`.",
        ]
        return "\n".join(lines)
