"""`htr enrich`: segment and read pages into ALTO, text, run.json and report.html (Prefect flow enrich-collection).

Rich, Prefect and the flow are imported when the command runs, not to build the parser.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.exitcodes import EXIT_FAILURES, EXIT_OK
from cli.options import add_run_options, settings_from
from htr.errors import InputError

if TYPE_CHECKING:
    from rich.console import Console

    from htr.config import RunSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr enrich` to the `htr` command's sub-commands."""
    e = subparsers.add_parser("enrich", help="segment and read pages into ALTO, text, run.json and report.html")
    e.add_argument("sources", nargs="+", help="image files, PDFs and folders (searched recursively)")
    e.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    add_run_options(e)
    e.add_argument("--force", action="store_true", help="redo every page even if its outputs are up to date")
    e.add_argument(
        "--segmentation-from",
        choices=["alto", "page"],
        help="SOURCES are ALTO/PAGE files (e.g. an eScriptorium export): keep their lines, re-read the text",
    )
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr enrich`: 0 when the failure ratio is within --max-failures, 1 otherwise."""
    from rich.console import Console

    from htr import preflight, runlock

    settings = settings_from(args, force=args.force, segmentation_from=args.segmentation_from)
    console = Console(stderr=True, soft_wrap=True)  # one message, one line: never wrapped at the terminal width
    for src in args.sources:
        if not Path(src).exists():
            raise InputError("no such file or folder", path=src)
    out = preflight.check_output(args.output)  # before the lock: it lives in OUT
    with runlock.exclusive(out) as lock:
        if lock.took_over:
            console.print(
                f"{out}: the run that held this folder ({lock.took_over}) ended without releasing it: taken over",
                markup=False,
            )
        preflight.check_models(settings)
        preflight.check_device(settings.device)
        summary = _run_enrich(args, settings, console)
    return _enrich_outcome(summary, settings, out, console)


def _run_enrich(args: argparse.Namespace, settings: RunSettings, console: Console) -> dict[str, Any]:
    """The enrich-collection flow behind a progress bar; returns its summary (also when it ended failed)."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from flows import enrich
    from flows.runtime import prefect_api
    from htr.errors import RunFailed

    counts: dict[str, Any] = {"done": 0, "failed": 0, "skipped": 0}  # the progress task's fields
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done {task.fields[done]} · failed [red]{task.fields[failed]}[/] · skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
    )
    bar = progress.add_task("starting", total=None, done=0, failed=0, skipped=0, rate="")

    def listen(kind: str, payload: Any) -> None:
        if kind == "planning":
            what, done, total = payload
            progress.update(bar, description=what, total=total, completed=done)
        elif kind == "warning":
            progress.console.print(f"[yellow]warning[/]: {escape(payload)}")
        elif kind == "plan":
            counts["skipped"] = len(payload.skipped)
            progress.update(bar, description="pages", total=len(payload.refs), completed=counts["skipped"], **counts)
            if payload.ignored and not args.quiet:
                _print_ignored(payload.ignored, console)
        elif kind == "page":
            counts[payload.status] = counts.get(payload.status, 0) + 1
            minutes = (time.monotonic() - started) / 60
            rate = f"{(counts['done'] + counts['failed']) / minutes:.1f} pages/min" if minutes > 0 else ""
            progress.update(bar, advance=1, rate=rate, **counts)
            if payload.status == "failed":
                progress.console.print(f"[red]failed[/] {escape(payload.page_id)}: {escape(payload.error or '')}")

    sources, output, cfg = [str(s) for s in args.sources], str(args.output), settings.model_dump()

    def start_workers() -> None:  # while the Prefect API starts: the workers import torch and load their models
        progress.update(bar, description="starting workers")
        enrich.prestart(sources, output, cfg, args.cluster)
        progress.update(bar, description="starting Prefect", total=None, completed=0)

    enrich.add_listener(listen)
    try:
        with progress:
            with prefect_api(meanwhile=start_workers):
                progress.update(bar, description="finding pages")
                try:
                    return enrich.enrich_collection(sources, output, cfg, args.cluster)
                except RunFailed as e:
                    return e.summary
    finally:
        enrich.release()  # the prestarted pool, if the flow did not take it
        enrich.remove_listener(listen)


def _print_ignored(ignored: list[tuple[str, str]], console: Console) -> None:
    """Files that are not pages: counted by extension; XML refused as segmentation named one per line."""
    from collections import Counter

    kinds = Counter(Path(p).suffix.lower() or "no extension" for p, _ in ignored)
    detail = ", ".join(f"{ext} ×{n}" for ext, n in kinds.most_common())
    console.print(f"{len(ignored)} file(s) ignored ({detail}): listed in run.json with the reason", markup=False)
    named = [(p, why) for p, why in ignored if why != "not an image"]
    for p, why in named[:10]:
        console.print(f"  ignored {p}: {why}", markup=False, highlight=False)
    if len(named) > 10:
        console.print(f"  … and {len(named) - 10} more", markup=False)


def _enrich_outcome(summary: dict[str, Any], settings: RunSettings, out: Path, console: Console) -> int:
    """The closing lines of `htr enrich` and its exit status."""
    from rich.markup import escape

    pending = summary.get("pending", 0)
    console.print(
        f"{summary['pages']} pages: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed, "
        + (f"{pending} not processed, " if pending else "")
        + f"{summary['ignored']} files ignored → {out / 'alto'}; report: {out / 'report.html'}",
        markup=False,
    )
    for line in summary.get("unwritten", []):
        console.print(f"[red]not written[/]: {escape(line)}", highlight=False)
    if summary.get("status") == "stopped":
        console.print(f"[red]stopped[/]: {escape(summary['stopped'])}", highlight=False)
        fix = (
            "free some space on the output's disk"
            if summary.get("fault") == "disk-full"
            else "fix the cause (see run.json) or raise --max-failures"
        )
        console.print(f"{fix}, then run the same command again to resume: pages done are kept")
        return EXIT_FAILURES
    if summary["pages"] and summary["failure_ratio"] > settings.max_failures:
        console.print(
            f"[red]failure ratio {summary['failure_ratio']:.1%} is above --max-failures {settings.max_failures:.1%}[/]: "
            f"see {escape(str(out / 'run.json'))}"
        )
        return EXIT_FAILURES
    return EXIT_OK
