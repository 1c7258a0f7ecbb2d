"""`htr watch`: the command line of the watch-inbox flow (flows/watch.py).

Registering the sub-command imports nothing heavy; Prefect and the flow are imported when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_FAILURES, EXIT_OK
from cli.options import add_run_options, settings_from
from htr.errors import InputError


def run(args: argparse.Namespace) -> int:
    """`htr watch`: serve the schedule until Ctrl-C, or with --once scan and enrich once (1: too many failures)."""
    from flows.watch import parse_every, scheduling_api, serve_watch, watch_inbox

    settings = settings_from(args).model_dump()
    inbox = Path(args.inbox)
    if not inbox.is_dir():
        raise InputError("no such folder", path=str(inbox))
    every = None if args.cron else parse_every(args.every)
    if args.once:
        from flows.runtime import prefect_api

        with prefect_api():
            res = watch_inbox(str(inbox), str(args.output), settings, args.settle, args.cluster)
        s = res.get("summary") or {}
        print(
            f"{res['complete']} complete file(s), {len(res['waiting'])} left for the next scan; "
            + (
                f"{s.get('done', 0)} page(s) done, {s.get('skipped', 0)} skipped, {s.get('failed', 0)} failed"
                if s
                else res["status"]
            ),
            file=sys.stderr,
        )
        return EXIT_FAILURES if s and s.get("pages") and s.get("failure_ratio", 0) > args.max_failures else EXIT_OK
    out = Path(args.output)
    with scheduling_api(out / ".state" / "watch" / "server.log") as url:
        when = f"cron {args.cron!r}" if args.cron else f"every {args.every}"
        print(
            f"watching {inbox} {when} -> {out}; Prefect API {url} (UI at {url.removesuffix('/api')}); Ctrl-C stops",
            file=sys.stderr,
        )
        serve_watch(
            str(inbox), str(out), settings, every, args.cron, args.timezone, args.settle, args.cluster, args.name
        )
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr watch` to the `htr` command's sub-commands."""
    w = subparsers.add_parser(
        "watch",
        help="enrich the complete files of an inbox folder on a schedule (Prefect serve)",
        description="Scan INBOX on a schedule and enrich the files that are complete: unchanged for --settle "
        "seconds between two scans, or in a folder holding a .done file. Runs a local Prefect server "
        "(with its UI) unless PREFECT_API_URL names one.",
    )
    w.add_argument("inbox", help="folder where collections are dropped")
    w.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    w.add_argument("--every", default="15m", help="scan interval: 15m, 1h, 90s... (default 15m)")
    w.add_argument("--cron", help="cron schedule instead of --every, e.g. '0 2 * * *'")
    w.add_argument("--timezone", help="time zone of the schedule, e.g. Europe/Paris")
    w.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds a file must stay unchanged between two scans to count as complete (default 30)",
    )
    add_run_options(w)  # --model --workers --threads --device --max-failures --batch-size --pdf-dpi --cluster ...
    w.add_argument("--name", help="deployment name (default: watch-<output folder>)")
    w.add_argument("--once", action="store_true", help="scan and enrich once now, then exit (no schedule)")
    w.set_defaults(func=run)
