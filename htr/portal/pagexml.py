"""PAGE XML 2019-07-15 of a page, from its ALTO (built with lxml).

ALTO TextBlock -> TextRegion (polygon, else box), TextLine -> TextLine (polygon, else box; BASELINE
-> Baseline), String -> Word (box as 4 corner points; WC -> TextEquiv@conf). Region and line text
(TextEquiv/Unicode) are their words joined; the ALTO reading order becomes ReadingOrder/OrderedGroup
over the regions. Points are `x,y` pairs in the pixels of the scanned image (imageFilename), clamped
into the page; a box HPOS/VPOS/WIDTH/HEIGHT has corners x..x+WIDTH-1, y..y+HEIGHT-1 (the inverse of
how alto.writer makes boxes from points). IDs are the ALTO IDs made valid and unique.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from lxml import etree

from alto.model import Page, Points, WBox
from alto.writer import xml_text
from core.geometry import clamp, clamp_points

PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_LOCATION = f"{PAGE_NS}/pagecontent.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_P = "{%s}" % PAGE_NS
_ID_BAD = re.compile(r"[^A-Za-z0-9._-]")


class _Ids:
    """Valid (NCName), unique ids."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, wanted: str, fallback: str) -> str:
        base = _ID_BAD.sub("_", wanted or fallback)
        if not re.match(r"[A-Za-z_]", base):
            base = f"id_{base}"
        cand, n = base, 1
        while cand in self.used:
            n += 1
            cand = f"{base}_{n}"
        self.used.add(cand)
        return cand


def _corners(box: WBox) -> Points:
    x, y, w, h = box
    x1, y1 = x + max(w, 1) - 1, y + max(h, 1) - 1
    return ((x, y), (x1, y), (x1, y1), (x, y1))


def _points(pts: Points, width: int, height: int) -> str:
    return " ".join(f"{x},{y}" for x, y in clamp_points(pts, width, height))


def _text_equiv(parent: etree._Element, text: str, conf: float | None = None) -> None:
    te = etree.SubElement(parent, _P + "TextEquiv")
    if conf is not None:
        te.set("conf", f"{clamp(conf, 0.0, 1.0):.4g}")
    etree.SubElement(te, _P + "Unicode").text = "\n".join(xml_text(t) for t in text.split("\n"))


def build_page(page_id: str, alto: Page, image_filename: str, creator: str) -> etree._ElementTree:
    """The PAGE tree of one page; `image_filename` names the scan the coordinates refer to."""
    w, h = max(1, alto.width), max(1, alto.height)
    ids = _Ids()
    root = etree.Element(_P + "PcGts", nsmap={None: PAGE_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PAGE_NS} {PAGE_LOCATION}")
    root.set("pcGtsId", ids(f"pc_{page_id}", "pc"))
    meta = etree.SubElement(root, _P + "Metadata")
    now = datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    etree.SubElement(meta, _P + "Creator").text = xml_text(creator)
    etree.SubElement(meta, _P + "Created").text = now
    etree.SubElement(meta, _P + "LastChange").text = now
    page = etree.SubElement(
        root, _P + "Page", imageFilename=xml_text(image_filename) or page_id, imageWidth=str(w), imageHeight=str(h)
    )

    lines_of: dict[str, list] = {}
    for ln in alto.lines:
        lines_of.setdefault(ln.block_id, []).append(ln)
    region_ids = [ids(b.id, f"r{n}") for n, b in enumerate(alto.blocks, 1)]
    if region_ids:
        og = etree.SubElement(
            etree.SubElement(page, _P + "ReadingOrder"), _P + "OrderedGroup", id=ids(f"ro_{page_id}", "ro")
        )
        for k, rid in enumerate(region_ids):
            etree.SubElement(og, _P + "RegionRefIndexed", index=str(k), regionRef=rid)
    for block, rid in zip(alto.blocks, region_ids):
        region = etree.SubElement(page, _P + "TextRegion", id=rid)
        poly = block.polygon if len(block.polygon) >= 3 else _corners(block.box)
        etree.SubElement(region, _P + "Coords", points=_points(poly, w, h))
        texts = []
        for ln in lines_of.get(block.id, []):
            tl = etree.SubElement(region, _P + "TextLine", id=ids(ln.id, "l"))
            lpoly = ln.polygon if len(ln.polygon) >= 3 else _corners(ln.box)
            etree.SubElement(tl, _P + "Coords", points=_points(lpoly, w, h))
            if len(ln.baseline) >= 2:
                etree.SubElement(tl, _P + "Baseline", points=_points(ln.baseline, w, h))
            confs = []
            for word in ln.words:
                we = etree.SubElement(tl, _P + "Word", id=ids(word.string_id, "w"))
                etree.SubElement(we, _P + "Coords", points=_points(_corners(word.box), w, h))
                _text_equiv(we, word.content, word.wc)
                if word.wc is not None:
                    confs.append(word.wc)
            _text_equiv(tl, ln.text, sum(confs) / len(confs) if confs else None)
            texts.append(ln.text)
        _text_equiv(region, "\n".join(texts))
    return etree.ElementTree(root)
