"""`htr validate`: check ALTO files against ALTO 4.4 and the rules the XSD cannot express (alto/validate.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_INVALID, EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr validate` to the `htr` command's sub-commands."""
    v = subparsers.add_parser("validate", help="check ALTO files against ALTO 4.4 and the rules the XSD cannot express")
    v.add_argument("paths", nargs="+", help="ALTO files or folders")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr validate`: every problem on stdout, a count on stderr; 3 when there is any."""
    from alto.validate import validate_paths

    problems = validate_paths([Path(p) for p in args.paths])
    for p in problems:
        print(p)
    files = sum(1 for p in args.paths for _ in ([Path(p)] if Path(p).is_file() else Path(p).rglob("*.xml")))
    print(f"{files} file(s) checked, {len(problems)} problem(s)", file=sys.stderr)
    return EXIT_INVALID if problems else EXIT_OK
