"""`htr search`: full-text search of OUT/index.sqlite, as text or JSON (htr/index/store.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.exitcodes import EXIT_OK, EXIT_USAGE
from cli.options import output_folder
from htr.errors import ConfigError, HTRError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr search` to the `htr` command's sub-commands."""
    p = subparsers.add_parser("search", help='search the index: words (all required), "a phrase", prefix*')
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("query", help='e.g. etat, "le 12 mars", notai*')
    p.add_argument("--limit", type=int, default=20, help="at most this many hits (default 20)")
    p.add_argument(
        "--json",
        action="store_true",
        help='hits as JSON (page, line, snippet, word boxes, rank); an error as {"error": ...}',
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr search`: 0; with --json an error is one JSON line on stdout and exit status 2."""
    from htr.index.store import Index, index_path

    try:
        if args.limit < 1:
            raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
        with Index.open(index_path(output_folder(args.output)), readonly=True) as idx:
            hits = idx.search(args.query, limit=args.limit)
    except HTRError as e:
        if not args.json:
            raise
        print(json.dumps({"query": args.query, "error": str(e)}, ensure_ascii=False))  # one JSON line, on stdout
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"query": args.query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False, indent=1))
        return EXIT_OK
    if not hits:
        print(f"no hits for {args.query!r}")
    for h in hits:
        boxes = " ".join(b.xywh for b in h.boxes)
        print(f"{h.rank:>3}. {h.page_id}  line {h.line_id}  [{boxes}]")
        print(f"     {h.snippet}")
    return EXIT_OK
