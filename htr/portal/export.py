"""Write the portal exports of an output folder: IIIF (manifests, annotation pages, page images),
METS (one file per document) and PAGE XML (one file per page). Every file is written atomically;
manifests, the collection and METS files are validated before they are written (htr.portal.validate),
so an export never leaves a file its schema rejects.

Layout, under OUT unless told otherwise (see htr.portal.urls for the URLs):
    OUT/iiif/collection.json, OUT/iiif/<doc>/manifest.json, OUT/iiif/<doc>/{lines,words}/<page>.json
    OUT/images/<page>.jpg        (also used by METS and `htr serve`)
    OUT/mets/<doc>.xml
    OUT/page/<page>.xml
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from alto.model import Page
from alto.reader import read_alto
from htr import atomic
from htr.errors import ExportError
from htr.portal.documents import Collection, Document, collect
from htr.portal.images import MAX_SIDE, derivative_size, ensure_image
from htr.portal.manifest import CanvasPage, collection, line_annotations, manifest, word_annotations
from htr.portal.mets import build_mets, page_files
from htr.portal.pagexml import build_page
from htr.portal.urls import Urls
from htr.portal.validate import check_iiif, check_mets


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    dest: Path
    documents: int
    pages: int
    files: int
    without_image: tuple[str, ...] = ()  # pages whose image could not be found


def software() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"htr-enrich {version('htr-enrich')}"
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "htr-enrich"


def _collection(out: str | Path) -> Collection:
    out = Path(out)
    if not (out / "alto").is_dir():
        raise ExportError("no alto/ folder here: not an output folder of htr enrich", path=str(out))
    coll = collect(out)
    if not coll.documents:
        raise ExportError("no ALTO files in alto/", path=str(out))
    return coll


def _base_url(base_url: str | None) -> str:
    if not base_url or not base_url.startswith(("http://", "https://")):
        raise ExportError(f"--base-url must be an http(s) URL, not {base_url!r}")
    return base_url.rstrip("/")


def _write(path: Path, data: bytes) -> None:
    try:
        atomic.write_bytes(path, data)
    except OSError as exc:
        raise ExportError(f"cannot write: {exc.strerror or exc}", path=str(path)) from exc


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    _write(path, (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def _write_xml(path: Path, tree: etree._ElementTree) -> None:
    _write(path, etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _pages(coll: Collection, doc: Document, max_side: int | None) -> list[CanvasPage]:
    """Each page's ALTO read, and its image drawn (max_side None: no images)."""
    pages = []
    for e in doc.pages:
        alto = read_alto(e.alto)
        size = None
        drawable = alto.width > 0 and alto.height > 0
        if max_side and drawable and ensure_image(coll.out, e, alto.width, alto.height, max_side, coll.pdf_dpi):
            size = derivative_size(alto.width, alto.height, max_side)
        pages.append(CanvasPage(e, alto, size))
    return pages


def export_iiif(out: str | Path, base_url: str, max_side: int = MAX_SIDE) -> ExportReport:
    """IIIF Presentation 3 for every document of OUT, published at `base_url` (see module docstring)."""
    urls = Urls.at(_base_url(base_url))
    coll = _collection(out)
    dest = coll.out / "iiif"
    files, n_pages, missing = 0, 0, []
    for doc in coll.documents:
        pages = _pages(coll, doc, max_side)
        for page in pages:
            pid = page.entry.id
            _write_json(dest / doc.id / "lines" / f"{pid}.json", line_annotations(urls, doc.id, page))
            _write_json(dest / doc.id / "words" / f"{pid}.json", word_annotations(urls, doc.id, page))
            files += 2
            if page.image_size is None:
                missing.append(pid)
        m = manifest(urls, doc, pages)
        path = dest / doc.id / "manifest.json"
        check_iiif(m, path)
        _write_json(path, m)
        files += 1
        n_pages += len(pages)
    c = collection(urls, coll.documents)
    check_iiif(c, dest / "collection.json")
    _write_json(dest / "collection.json", c)
    return ExportReport(dest, len(coll.documents), n_pages, files + 1, tuple(missing))


def export_mets(
    out: str | Path, dest: str | Path | None = None, base_url: str | None = None, max_side: int = MAX_SIDE
) -> ExportReport:
    """One METS file per document of OUT, in `dest` (default OUT/mets)."""
    coll = _collection(out)
    dest = Path(dest) if dest else coll.out / "mets"
    base = _base_url(base_url) if base_url else None
    me = software()
    n_pages, missing = 0, []
    for doc in coll.documents:
        images: dict[str, Path | None] = {}
        for page in _pages(coll, doc, max_side):
            images[page.entry.id] = (coll.out / "images" / f"{page.entry.id}.jpg") if page.image_size else None
            if page.image_size is None:
                missing.append(page.entry.id)
        tree = build_mets(doc, page_files(doc, coll.out, dest, base, images), me)
        path = dest / f"{doc.id}.xml"
        check_mets(tree, path)
        _write_xml(path, tree)
        n_pages += len(doc.pages)
    return ExportReport(dest, len(coll.documents), n_pages, len(coll.documents), tuple(missing))


def _image_filename(source: str, alto: Page, dest: Path) -> str:
    if source:
        return Path(os.path.relpath(Path(source).resolve(), dest.resolve())).as_posix()
    return alto.file_name


def export_page(out: str | Path, dest: str | Path | None = None) -> ExportReport:
    """One PAGE 2019 file per page of OUT, in `dest` (default OUT/page)."""
    coll = _collection(out)
    dest = Path(dest) if dest else coll.out / "page"
    me = software()
    n = 0
    for doc in coll.documents:
        for e in doc.pages:
            alto = read_alto(e.alto)
            _write_xml(dest / f"{e.id}.xml", build_page(e.id, alto, _image_filename(e.source, alto, dest), me))
            n += 1
    return ExportReport(dest, len(coll.documents), n, n)
