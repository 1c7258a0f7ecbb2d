"""`htr entities`: the index of names, places, organisations and dates, with counts and pages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.exitcodes import EXIT_OK
from cli.options import output_folder
from htr.errors import ConfigError

TYPES = ("PER", "LOC", "ORG", "DATE", "MISC")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr entities` to the `htr` command's sub-commands."""
    p = subparsers.add_parser("entities", help="index of names, places, organisations and dates, with counts and pages")
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("--type", choices=TYPES, type=str.upper, help="only this type")
    p.add_argument("--limit", type=int, default=0, help="at most this many entries (default all)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr entities`: the entries, most frequent first, as text or JSON; 0."""
    from htr.index.store import Index, index_path

    if args.limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more (got {args.limit})")
    with Index.open(index_path(output_folder(args.output)), readonly=True) as idx:
        entries = idx.entities(args.type)
    if args.limit:
        entries = entries[: args.limit]
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=1))
        return EXIT_OK
    if not entries:
        print("no entities" + (f" of type {args.type}" if args.type else ""))
    for e in entries:
        pages = ", ".join(e.pages[:8]) + (f" … (+{len(e.pages) - 8})" if len(e.pages) > 8 else "")
        print(f"{e.type:<5} {e.count:>5}  {e.normalised}  — {len(e.pages)} page(s): {pages}")
    return EXIT_OK
