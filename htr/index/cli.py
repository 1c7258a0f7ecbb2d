"""Sub-commands `htr index`, `search`, `entities`, `export`, `serve`: `register(subparsers)` adds them
to the `htr` parser (each sets `func(args) -> exit code`); `main(argv)` runs them on their own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from htr.errors import ConfigError, HTRError

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
TYPES = ("PER", "LOC", "ORG", "DATE", "MISC")


def _out(path: Path) -> Path:
    if not Path(path).is_dir():
        raise ConfigError("no such output folder", path=str(path))
    return Path(path)


def _index(args: argparse.Namespace) -> int:
    from htr.index.store import index_path, rebuild, sync

    out = _out(args.output)
    report = sync(out) if args.sync else rebuild(out)
    for pid, reason in report.failed:
        print(f"failed {pid}: {reason}", file=sys.stderr)
    if args.sync:
        print(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
              f"{report.unchanged} unchanged, {len(report.failed)} failed -> {index_path(out)}")
    else:
        print(f"{len(report.added)} page(s) indexed, {len(report.failed)} failed -> {index_path(out)}")
    return EXIT_FAILURES if report.failed else EXIT_OK


def _search(args: argparse.Namespace) -> int:
    from htr.index.store import Index, index_path

    with Index.open(index_path(_out(args.output)), readonly=True) as idx:
        hits = idx.search(args.query, limit=args.limit)
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


def _entities(args: argparse.Namespace) -> int:
    from htr.index.store import Index, index_path

    with Index.open(index_path(_out(args.output)), readonly=True) as idx:
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


def _export(args: argparse.Namespace) -> int:
    from htr.index.export import export_solr

    res = export_solr(_out(args.output), args.dest, args.solr_path)
    print(f"{res['docs']} document(s) for Solr -> {Path(res['dest']) / 'docs.json'} "
          f"(+ schema-snippet.xml, solrconfig-snippet.xml, README.txt)")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from htr.index.iiif import serve
    from htr.index.store import index_path

    out = _out(args.output)
    print(f"IIIF Content Search 2.0 on http://{args.host}:{args.port}/search?q=… (Ctrl-C stops)", file=sys.stderr)
    serve(index_path(out), args.host, args.port, args.base_url, args.page_size)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `index`, `search`, `entities`, `export` and `serve` to the `htr` sub-commands."""
    p = subparsers.add_parser("index", help="build OUT/index.sqlite (full-text + entities) from OUT/alto/*.xml")
    p.add_argument("output", type=Path, help="output folder of htr enrich (or any folder with alto/*.xml)")
    p.add_argument("--sync", action="store_true", help="only re-index pages whose ALTO changed, drop removed ones")
    p.set_defaults(func=_index)

    p = subparsers.add_parser("search", help="search the index: words (all required), \"a phrase\", prefix*")
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("query", help='e.g. etat, "le 12 mars", notai*')
    p.add_argument("--limit", type=int, default=20, help="at most this many hits (default 20)")
    p.add_argument("--json", action="store_true", help="hits as JSON (page, line, snippet, word boxes, rank)")
    p.set_defaults(func=_search)

    p = subparsers.add_parser("entities", help="index of names, places, organisations and dates, with counts and pages")
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("--type", choices=TYPES, type=str.upper, help="only this type")
    p.add_argument("--limit", type=int, default=0, help="at most this many entries (default all)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=_entities)

    p = subparsers.add_parser("export", help="documents for portals (solr: dbmdz OCR highlighting plugin)")
    p.add_argument("target", choices=("solr",), help="what to export for")
    p.add_argument("output", type=Path, help="output folder of htr enrich")
    p.add_argument("-o", "--dest", type=Path, required=True, help="folder to write the documents and schema into")
    p.add_argument("--solr-path", help="path of OUT/alto as Solr sees it (default: the absolute local path)")
    p.set_defaults(func=_export)

    p = subparsers.add_parser("serve", help="IIIF Content Search API 2.0 endpoint /search?q= over the index")
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--base-url", help="public base URL: canvases are {base}/canvas/{page_id} (default: the request's)")
    p.add_argument("--page-size", type=int, default=100, help="annotations per result page (default 100)")
    p.set_defaults(func=_serve)


def main(argv: list[str] | None = None) -> int:
    """Run one of these sub-commands as `htr` would (errors: one line on stderr, exit status 2)."""
    ap = argparse.ArgumentParser(prog="htr")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except HTRError as e:
        print(f"htr: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
