"""`htr serve`: the read-only reading room of an output folder (htr/portal/server.py; Starlette when it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_OK
from cli.options import output_folder
from htr.portal import MAX_SIDE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr serve` to the `htr` command's sub-commands."""
    p = subparsers.add_parser(
        "serve",
        help="reading room: page images beside their text, search (IIIF Content Search 2.0), IIIF manifests; read-only",
    )
    p.add_argument("output", type=Path, help="output folder of htr enrich (holding alto/ and index.sqlite)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--base-url", help="public base URL for manifests and search targets (default: the request's)")
    p.add_argument("--page-size", type=int, default=100, help="search annotations per result page (default 100)")
    p.add_argument(
        "--image-size",
        type=int,
        default=MAX_SIDE,
        help=f"longer side of the page images shown (default {MAX_SIDE}); drawn into OUT/images on first view",
    )
    p.add_argument(
        "--low-confidence",
        type=float,
        default=0.5,
        help="words read with a confidence below this are marked (default 0.5)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr serve`: 0 when the server stops."""
    from htr.index.store import index_path
    from htr.portal.server import serve

    out = output_folder(args.output)
    search = (
        "IIIF Content Search 2.0 at /search?q=…"
        if index_path(out).is_file()
        else "no search: no index.sqlite (run htr index OUT)"
    )
    print(f"Reading room on http://{args.host}:{args.port}/ ({search}; read-only; Ctrl-C stops)", file=sys.stderr)
    serve(out, args.host, args.port, args.base_url, args.page_size, args.image_size, args.low_confidence)
    return EXIT_OK
