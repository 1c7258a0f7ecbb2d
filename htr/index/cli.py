"""Sub-commands `htr index`, `search`, `entities`, `export` (solr, iiif, mets, page) and `serve` (the reading
room): `register(subparsers)` adds them to the `htr` parser (each sets `func(args) -> exit code`); `main(argv)`
runs them on their own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from htr.errors import ConfigError, HTRError
from htr.portal import MAX_SIDE

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
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged, {len(report.failed)} failed -> {index_path(out)}"
        )
    else:
        print(f"{len(report.added)} page(s) indexed, {len(report.failed)} failed -> {index_path(out)}")
    return EXIT_FAILURES if report.failed else EXIT_OK


def _search(args: argparse.Namespace) -> int:
    from htr.index.store import Index, index_path

    try:
        if args.limit < 1:
            raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
        with Index.open(index_path(_out(args.output)), readonly=True) as idx:
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


def _entities(args: argparse.Namespace) -> int:
    from htr.index.store import Index, index_path

    if args.limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more (got {args.limit})")
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
    out = _out(args.output)
    if args.target == "solr":
        from htr.index.export import export_solr

        if args.dest is None:
            raise ConfigError("export solr needs -o DEST (the folder to write the documents into)")
        res = export_solr(out, args.dest, args.solr_path)
        print(
            f"{res['docs']} document(s) for Solr -> {Path(res['dest']) / 'docs.json'} "
            f"(+ schema-snippet.xml, solrconfig-snippet.xml, README.txt)"
        )
        return EXIT_OK
    from htr.portal import export

    if args.target == "iiif":
        if args.dest is not None:
            raise ConfigError("export iiif writes into OUT (iiif/, images/): publish OUT at --base-url; -o is not used")
        if not args.base_url:
            raise ConfigError(
                "export iiif needs --base-url, the URL OUT will be published at "
                "(e.g. https://portal.example.org/collection or http://127.0.0.1:8080)"
            )
        rep = export.export_iiif(out, args.base_url, args.image_size)
        what = f"{rep.documents} manifest(s), {rep.pages} canvas(es) -> {rep.dest} (+ page images in {out / 'images'})"
    elif args.target == "mets":
        rep = export.export_mets(out, args.dest, args.base_url, args.image_size)
        what = f"{rep.documents} METS file(s), {rep.pages} page(s) -> {rep.dest}"
    else:
        rep = export.export_page(out, args.dest)
        what = f"{rep.pages} PAGE file(s) -> {rep.dest}"
    print(what)
    if rep.without_image:
        print(
            f"{len(rep.without_image)} page(s) without an image (source file not found): "
            f"{', '.join(rep.without_image[:5])}{' …' if len(rep.without_image) > 5 else ''}",
            file=sys.stderr,
        )
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from htr.index.store import index_path
    from htr.portal.server import serve

    out = _out(args.output)
    search = (
        "IIIF Content Search 2.0 at /search?q=…"
        if index_path(out).is_file()
        else "no search: no index.sqlite (run htr index OUT)"
    )
    print(f"Reading room on http://{args.host}:{args.port}/ ({search}; read-only; Ctrl-C stops)", file=sys.stderr)
    serve(out, args.host, args.port, args.base_url, args.page_size, args.image_size, args.low_confidence)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `index`, `search`, `entities`, `export` and `serve` to the `htr` sub-commands."""
    p = subparsers.add_parser("index", help="build OUT/index.sqlite (full-text + entities) from OUT/alto/*.xml")
    p.add_argument("output", type=Path, help="output folder of htr enrich (or any folder with alto/*.xml)")
    p.add_argument("--sync", action="store_true", help="only re-index pages whose ALTO changed, drop removed ones")
    p.set_defaults(func=_index)

    p = subparsers.add_parser("search", help='search the index: words (all required), "a phrase", prefix*')
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("query", help='e.g. etat, "le 12 mars", notai*')
    p.add_argument("--limit", type=int, default=20, help="at most this many hits (default 20)")
    p.add_argument(
        "--json",
        action="store_true",
        help='hits as JSON (page, line, snippet, word boxes, rank); an error as {"error": ...}',
    )
    p.set_defaults(func=_search)

    p = subparsers.add_parser("entities", help="index of names, places, organisations and dates, with counts and pages")
    p.add_argument("output", type=Path, help="output folder holding index.sqlite")
    p.add_argument("--type", choices=TYPES, type=str.upper, help="only this type")
    p.add_argument("--limit", type=int, default=0, help="at most this many entries (default all)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=_entities)

    p = subparsers.add_parser(
        "export",
        help="for portals: iiif (IIIF Presentation 3 manifests + text annotations), "
        "mets, page (PAGE XML 2019), solr (OCR highlighting plugin)",
    )
    p.add_argument("target", choices=("iiif", "mets", "page", "solr"), help="what to export")
    p.add_argument("output", type=Path, help="output folder of htr enrich")
    p.add_argument(
        "-o",
        "--dest",
        type=Path,
        help="folder to write into (solr: required; mets/page: default OUT/mets, OUT/page; iiif: always OUT)",
    )
    p.add_argument("--base-url", help="iiif (required) / mets (optional): the URL OUT is published at")
    p.add_argument(
        "--image-size",
        type=int,
        default=MAX_SIDE,
        help=f"iiif/mets: longer side of the page images written to OUT/images (default {MAX_SIDE})",
    )
    p.add_argument("--solr-path", help="solr: path of OUT/alto as Solr sees it (default: the absolute local path)")
    p.set_defaults(func=_export)

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
