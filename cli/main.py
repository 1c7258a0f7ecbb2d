"""The `htr` command: the top-level parser, dispatch to a sub-command, and errors as exit statuses.

Each sub-command is a module of this package with `register(subparsers)`, which adds its parser and
sets `func`, and `run(args) -> exit status`. Registering imports nothing heavy: each sub-command
imports what it runs (Prefect, Kraken, torch, spaCy, Starlette) only when it runs.

Exit status (README "Exit codes"; the table is in core/errors.py, each `HTRError` carries its `exit_code`):
0 done; 1 ran but failed (--max-failures, stopped, nothing scored); 2 usage or settings (and any other
error); 3 an input missing or invalid (`validate`: problems found); 4 model or device; 5 output folder
unusable (not writable, full, locked); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from cli import enrich, entities, evaluate, export, index, models, search, serve, train, validate, watch
from cli.exitcodes import EXIT_INTERRUPTED
from htr.errors import HTRError

# in the order `htr --help` lists them
SUBCOMMANDS = (enrich, validate, train, models, evaluate, watch, index, search, entities, export, serve)


def parser() -> argparse.ArgumentParser:
    """The `htr` parser with every sub-command."""
    ap = argparse.ArgumentParser(prog="htr", description="Read handwritten and typed archive pages into ALTO 4.4.")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run `htr ARGV`; an HTRError is one line on stderr and its `exit_code` (cli/exitcodes.py)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bar says what matters
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except HTRError as e:
        print(f"htr: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("htr: interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
