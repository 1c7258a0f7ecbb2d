"""METS 1.12 for a document (built with lxml), as Goobi/Kitodo, the DFG-Viewer and OCR-D read it.

- `fileSec`: fileGrp `MASTER` (the original image file of each page, where the page is a whole
  single-image file), `DEFAULT` (the JPEG derivative under images/) and `FULLTEXT` (ALTO 4.4,
  MIMETYPE `application/alto+xml`); every file an `FLocat LOCTYPE="URL"` with `xlink:href` relative
  to the METS file (or absolute under `base_url` when one is given; originals as `file://` URIs).
- `structMap TYPE="PHYSICAL"`: a `physSequence` div holding one `page` div per page, ORDER 1..n in
  page order, ORDERLABEL the page id, with a `fptr` to each of the page's files.
IDs are made from positions (`PHYS_0001`, `FILE_0001_FULLTEXT`...), so they are valid and unique.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lxml import etree

from alto.writer import xml_text
from htr.portal.documents import Document

METS_NS = "http://www.loc.gov/METS/"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
METS_LOCATION = "http://www.loc.gov/standards/mets/mets.xsd"
_M = "{%s}" % METS_NS
_XL = "{%s}" % XLINK_NS
_SINGLE_IMAGE = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".jp2", ".bmp", ".webp", ".gif"}


@dataclass(frozen=True)
class MetsFiles:
    """Where one page's files are, as the METS should name them (None: not there)."""

    master: str | None
    image: str | None
    alto: str


def _href(target: Path, mets_dir: Path, base_url: str | None, out: Path) -> str:
    if base_url:
        rel = target.resolve().relative_to(out.resolve()).as_posix()
        return f"{base_url.rstrip('/')}/{rel}"
    return Path(os.path.relpath(target.resolve(), mets_dir.resolve())).as_posix()


def page_files(
    doc: Document, out: Path, mets_dir: Path, base_url: str | None, images: dict[str, Path | None]
) -> list[MetsFiles]:
    """The file locations of each page of `doc` (`images`: page id -> its derivative, if any)."""
    files = []
    for p in doc.pages:
        src = Path(p.source) if p.source else None
        # a page that is a whole file (not one page of the document's multi-page PDF/TIFF)
        whole = src is not None and p.source != doc.source and src.suffix.lower() in _SINGLE_IMAGE and src.is_file()
        img = images.get(p.id)
        files.append(
            MetsFiles(
                src.resolve().as_uri() if whole and src is not None else None,
                _href(img, mets_dir, base_url, out) if img else None,
                _href(p.alto, mets_dir, base_url, out),
            )
        )
    return files


def _file(grp: etree._Element, fid: str, mime: str, href: str) -> None:
    f = etree.SubElement(grp, _M + "file", ID=fid, MIMETYPE=mime)
    etree.SubElement(f, _M + "FLocat", {"LOCTYPE": "URL", _XL + "href": href})


def _mime(href: str) -> str:
    ext = href.rsplit(".", 1)[-1].lower()
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "tif": "image/tiff",
        "tiff": "image/tiff",
        "jp2": "image/jp2",
        "bmp": "image/bmp",
        "webp": "image/webp",
        "gif": "image/gif",
    }.get(ext, "image")


def build_mets(doc: Document, files: Sequence[MetsFiles], software: str) -> etree._ElementTree:
    """The METS tree of `doc`; `files[k]` are the files of `doc.pages[k]`."""
    root = etree.Element(
        _M + "mets",
        nsmap={"mets": METS_NS, "xlink": XLINK_NS, "xsi": XSI_NS},
        OBJID=doc.id,
        LABEL=xml_text(doc.label or doc.id),
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{METS_NS} {METS_LOCATION}")
    now = datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    hdr = etree.SubElement(root, _M + "metsHdr", CREATEDATE=now)
    agent = etree.SubElement(hdr, _M + "agent", ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    etree.SubElement(agent, _M + "name").text = xml_text(software)

    sec = etree.SubElement(root, _M + "fileSec")
    groups = {use: etree.Element(_M + "fileGrp", USE=use) for use in ("MASTER", "DEFAULT", "FULLTEXT")}
    ids: list[list[str]] = []
    for n, f in enumerate(files, 1):
        mine = []
        if f.master:
            mine.append(f"FILE_{n:04d}_MASTER")
            _file(groups["MASTER"], mine[-1], _mime(f.master), f.master)
        if f.image:
            mine.append(f"FILE_{n:04d}_DEFAULT")
            _file(groups["DEFAULT"], mine[-1], "image/jpeg", f.image)
        mine.append(f"FILE_{n:04d}_FULLTEXT")
        _file(groups["FULLTEXT"], mine[-1], "application/alto+xml", f.alto)
        ids.append(mine)
    for grp in groups.values():
        if len(grp):
            sec.append(grp)

    smap = etree.SubElement(root, _M + "structMap", TYPE="PHYSICAL")
    seq = etree.SubElement(smap, _M + "div", ID="PHYS_0000", TYPE="physSequence", LABEL=xml_text(doc.label or doc.id))
    for n, (page, mine) in enumerate(zip(doc.pages, ids), 1):
        div = etree.SubElement(seq, _M + "div", ID=f"PHYS_{n:04d}", TYPE="page", ORDER=str(n), ORDERLABEL=page.id)
        for fid in mine:
            etree.SubElement(div, _M + "fptr", FILEID=fid)
    return etree.ElementTree(root)
