"""`htr index`: build or sync OUT/index.sqlite (full-text + entities) from OUT/alto/*.xml (htr/index/store.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_FAILURES, EXIT_OK
from cli.options import output_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr index` to the `htr` command's sub-commands."""
    p = subparsers.add_parser("index", help="build OUT/index.sqlite (full-text + entities) from OUT/alto/*.xml")
    p.add_argument("output", type=Path, help="output folder of htr enrich (or any folder with alto/*.xml)")
    p.add_argument("--sync", action="store_true", help="only re-index pages whose ALTO changed, drop removed ones")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr index`: 0, or 1 when a page could not be indexed."""
    from htr.index.store import index_path, rebuild, sync

    out = output_folder(args.output)
    report = sync(out) if args.sync else rebuild(out)
    for pid, reason in report.failed:
        print(f"failed {pid}: {reason}", file=sys.stderr)
    if args.sync:
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged, {len(report.failed)} failed -> {index_path(out)}"
        )
    else:
        print(f"{len(report.added)} page(s) indexed, {len(report.failed)} failed -> {index_path(out)}")
    return EXIT_FAILURES if report.failed else EXIT_OK
