"""`htr export`: IIIF, METS and PAGE for portals (htr/portal/export.py), Solr documents (htr/index/export.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_OK
from cli.options import output_folder
from htr.errors import ConfigError
from htr.portal import MAX_SIDE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr export` to the `htr` command's sub-commands."""
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr export`: write TARGET's files and say where; 0 (pages without an image are only listed)."""
    out = output_folder(args.output)
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
