"""Build ALTO 4.4 from the pipeline records, serialise it and write it atomically.

Everything is built with lxml (never string templates), so text is escaped by the
serialiser. Characters XML 1.0 cannot hold are dropped instead of crashing.

Geometry rules (all coordinates are ints, absolute pixels of the page):
- every point is clamped into [0, width-1] x [0, height-1];
- boxes are `(x0, y0, x1, y1)` with x1/y1 exclusive: HPOS=x0, WIDTH=x1-x0 (>= 1);
- word boxes are clipped to their line's box.

IDs are valid `xsd:ID` (NCName) values derived from the page id, so that ALTO files of
one collection can be merged (METS) without clashes: page `p_<id>`, blocks `<pid>_b<n>`,
lines `<pid>_l<n>`, words `<pid>_l<n>_w<k>`, processing steps `<pid>_proc<n>`
(plus `<pid>_ps` PrintSpace, `<pid>_tag<n>` tags, `<pid>_ro` / `<pid>_ro<n>` reading order).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from core import atomic
from core.errors import AltoError
from core.geometry import clamp, clamp_points, clip_box
from core.types import Box, Line, LineText, PageImage, PageSegmentation, PageText, Point, ProcessingStep, Region, Word

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
SCHEMA_VERSION = "4.4"

# ALTO processingCategoryType: a list of these tokens.
PROCESSING_CATEGORIES = frozenset(
    {"contentGeneration", "contentModification", "preOperation", "postOperation", "other"}
)

_A = "{%s}" % ALTO_NS
_ID_BAD = re.compile(r"[^A-Za-z0-9._-]")
# Everything XML 1.0 cannot hold (C0 controls except tab/LF/CR, lone surrogates, U+FFFE/U+FFFF).
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_WS = re.compile("[\u0009\u000a\u000d]")
# xsd:date / xsd:dateTime / xsd:gYear / xsd:gYearMonth (ALTO dateTimeType).
_TZ = r"(Z|[+-]\d\d:\d\d)?"
_XSD_DATE = re.compile(
    r"-?\d{4,}(-\d\d(-\d\d(T\d\d:\d\d:\d\d(\.\d+)?)?)?)?" + _TZ + r"\Z",
)


# --------------------------------------------------------------------------- helpers


def xml_id(page_id: str) -> str:
    """Page XML id: `p_` + page id with every char outside [A-Za-z0-9._-] replaced by `_` (a valid NCName)."""
    return "p_" + _ID_BAD.sub("_", str(page_id))


def xml_text(value: Any) -> str:
    """`value` as a string XML 1.0 can hold: forbidden characters dropped, tab/CR/LF turned into spaces."""
    return _XML_WS.sub(" ", _XML_BAD.sub("", str(value)))


def _xml_str(value: Any) -> str:
    """Like xml_text but keeps tab/CR/LF (for element text such as settings)."""
    return _XML_BAD.sub("", str(value))


def _fmt_conf(value: float) -> str | None:
    """Confidence rounded to 4 decimals, clamped into [0, 1], without trailing zeros; None for NaN/garbage."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return None
    v = round(clamp(v, 0.0, 1.0), 4)
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return s or "0"


def _xsd_datetime(value: str) -> str | None:
    """`value` as an ALTO dateTimeType value (ISO 8601 with `T`), None when it cannot be one."""
    v = (value or "").strip()
    if not v:
        return None
    if len(v) > 10 and v[10] == " ":
        v = v[:10] + "T" + v[11:]
    if v.endswith("+00:00") and "T" in v:
        v = v[:-6] + "Z"
    # xsd:dateTime needs seconds: "2024-01-02T03:04" -> "...:00"
    m = re.match(r"(\d{4,}-\d\d-\d\dT\d\d:\d\d)(Z|[+-]\d\d:\d\d)?\Z", v)
    if m:
        v = m.group(1) + ":00" + (m.group(2) or "")
    return v if _XSD_DATE.match(v) else None


@dataclass
class _Geom:
    """Page geometry: clamps points and boxes into the page."""

    width: int
    height: int

    def points(self, pts: Sequence[Point]) -> tuple[Point, ...]:
        return clamp_points(pts, self.width, self.height)

    def box_of(self, pts: Sequence[Point]) -> Box:
        c = self.points(pts)
        xs = [p[0] for p in c]
        ys = [p[1] for p in c]
        return (min(xs), min(ys), max(xs) + 1, max(ys) + 1)


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _set_box(el: etree._Element, box: Box) -> None:
    el.set("HPOS", str(box[0]))
    el.set("VPOS", str(box[1]))
    el.set("WIDTH", str(box[2] - box[0]))
    el.set("HEIGHT", str(box[3] - box[1]))


def _points_attr(pts: Sequence[Point]) -> str:
    return " ".join(f"{x} {y}" for x, y in pts)


def _add_shape(parent: etree._Element, pts: Sequence[Point]) -> None:
    if len(pts) >= 3:
        shape = etree.SubElement(parent, _A + "Shape")
        etree.SubElement(shape, _A + "Polygon", POINTS=_points_attr(pts))


# --------------------------------------------------------------------------- layout


@dataclass
class _Block:
    region: Region | None
    lines: list[Line] = field(default_factory=list)


def _blocks(seg: PageSegmentation) -> list[_Block]:
    """TextBlocks in reading order: one per region (order of first appearance, lines keep their order),
    lines with no/unknown region in synthetic blocks (one per contiguous run), then regions without lines."""
    regions = {r.id: r for r in seg.regions}
    blocks: list[_Block] = []
    by_region: dict[str, _Block] = {}
    run: _Block | None = None  # current synthetic block
    for line in seg.lines:
        rid = line.region_id if line.region_id in regions else None
        if rid is None:
            if run is None:
                run = _Block(None)
                blocks.append(run)
            run.lines.append(line)
            continue
        run = None
        blk = by_region.get(rid)
        if blk is None:
            blk = by_region[rid] = _Block(regions[rid])
            blocks.append(blk)
        blk.lines.append(line)
    for r in seg.regions:
        if r.id not in by_region and r.polygon:
            by_region[r.id] = _Block(r)
            blocks.append(by_region[r.id])
    return blocks


def _ordered_lines(seg: PageSegmentation) -> list[Line]:
    return [ln for b in _blocks(seg) for ln in b.lines]


def _texts_by_line(text: PageText | None) -> dict[str, deque[LineText]]:
    out: dict[str, deque[LineText]] = defaultdict(deque)
    for lt in text.lines if text else ():
        out[lt.line_id].append(lt)
    return out


def _take(texts: dict[str, deque[LineText]], line_id: str) -> LineText | None:
    q = texts.get(line_id)
    return q.popleft() if q else None


# --------------------------------------------------------------------------- building


def _description(root: etree._Element, page: PageImage, steps: Sequence[ProcessingStep], pid: str) -> list[str]:
    desc = etree.SubElement(root, _A + "Description")
    etree.SubElement(desc, _A + "MeasurementUnit").text = "pixel"
    src = etree.SubElement(desc, _A + "sourceImageInformation")
    name = re.split(r"[\\/]", page.ref.source or "")[-1] or Path(page.path).name
    etree.SubElement(src, _A + "fileName").text = xml_text(name)
    if page.ref.sha256:
        etree.SubElement(src, _A + "fileIdentifier", fileIdentifierLocation="sha256").text = xml_text(page.ref.sha256)
    ids = []
    for n, step in enumerate(steps, 1):
        pid_n = f"{pid}_proc{n}"
        ids.append(pid_n)
        proc = etree.SubElement(desc, _A + "Processing", ID=pid_n)
        tokens = str(step.category or "").split()
        category = " ".join(tokens) if tokens and all(t in PROCESSING_CATEGORIES for t in tokens) else "other"
        etree.SubElement(proc, _A + "processingCategory").text = category
        date = _xsd_datetime(step.date)
        if date:
            etree.SubElement(proc, _A + "processingDateTime").text = date
        if step.description:
            etree.SubElement(proc, _A + "processingStepDescription").text = _xml_str(step.description)
        settings = json.dumps(
            step.settings or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        etree.SubElement(proc, _A + "processingStepSettings").text = _xml_str(settings)
        sw = etree.SubElement(proc, _A + "processingSoftware")
        etree.SubElement(sw, _A + "softwareName").text = xml_text(step.software)
        etree.SubElement(sw, _A + "softwareVersion").text = xml_text(step.version)
    return ids


def _add_tagrefs(el: etree._Element, refs: Sequence[str]) -> None:
    """Append tag ids to an element's TAGREFS, keeping the ones it has (no duplicates)."""
    have = (el.get("TAGREFS") or "").split()
    for r in refs:
        if r not in have:
            have.append(r)
    if have:
        el.set("TAGREFS", " ".join(have))


def _strings(
    tl: etree._Element, lid: str, lbox: Box, lt: LineText | None, tagrefs: dict[int, list[str]] | None = None
) -> None:
    """String/SP children of a TextLine (the XSD requires at least one String).

    `tagrefs`: String number (1-based, as in the `_w<k>` id) -> tag ids to add to its TAGREFS.
    """
    tagrefs = tagrefs or {}
    words: tuple[Word, ...] = lt.words if lt else ()
    if not words:
        content = xml_text(lt.text) if lt else ""
        s = etree.SubElement(tl, _A + "String", ID=f"{lid}_w1", CONTENT=content)
        _set_box(s, lbox)
        wc = _fmt_conf(lt.confidence) if lt and content else None
        if wc is not None:
            s.set("WC", wc)
        if 1 in tagrefs:
            _add_tagrefs(s, tagrefs[1])
        return
    prev: Box | None = None
    for k, w in enumerate(words, 1):
        box = clip_box(w.box, lbox)
        if prev is not None:
            sp = etree.SubElement(tl, _A + "SP")
            if box[0] > prev[2]:  # left-to-right gap
                gap = (prev[2], box[0])
            elif prev[0] > box[2]:  # right-to-left gap
                gap = (box[2], prev[0])
            else:
                gap = None  # touching/overlapping words: a bare SP (all its attributes are optional)
            if gap:
                sp.set("HPOS", str(gap[0]))
                sp.set("VPOS", str(min(prev[1], box[1])))
                sp.set("WIDTH", str(gap[1] - gap[0]))
        s = etree.SubElement(tl, _A + "String", ID=f"{lid}_w{k}", CONTENT=xml_text(w.text))
        _set_box(s, box)
        wc = _fmt_conf(w.confidence)
        if wc is not None:
            s.set("WC", wc)
        if k in tagrefs:
            _add_tagrefs(s, tagrefs[k])
        prev = box


def _word_spans(lt: LineText) -> list[tuple[int, int]]:
    """Character span of each word of `lt` in `lt.text` (words found in order; a word that cannot be
    found is placed after the previous one, as if words were separated by single spaces)."""
    out: list[tuple[int, int]] = []
    cur = 0
    for w in lt.words:
        i = lt.text.find(w.text, cur) if w.text else -1
        if i < 0:
            i = cur + (1 if out else 0)
        out.append((i, i + len(w.text)))
        cur = i + len(w.text)
    return out


def _entity_refs(
    seg: PageSegmentation, text: PageText | None, entities: Sequence[Any], pid: str
) -> tuple[list[tuple[str, Any]], dict[str, dict[int, list[str]]]]:
    """NamedEntityTag ids for the entities that cover at least one String, and, per segmentation
    line id, String number -> tag ids. Entity spans are (line_id, start, end) in the line's text."""
    first: dict[str, LineText] = {}
    for t in text.lines if text else ():
        first.setdefault(t.line_id, t)
    placed = {ln.id for ln in seg.lines}
    tags: list[tuple[str, Any]] = []
    refs: dict[str, dict[int, list[str]]] = {}
    for ent in entities:
        covered: list[tuple[str, int]] = []
        for span in getattr(ent, "spans", ()):
            lid, start, end = str(span[0]), int(span[1]), int(span[2])
            lt = first.get(lid)
            if lt is None or lid not in placed:
                continue
            if not lt.words:
                if start < max(len(lt.text), 1) and end > 0:
                    covered.append((lid, 1))
                continue
            for k, (ws, we) in enumerate(_word_spans(lt), 1):
                if ws < end and start < max(we, ws + 1):
                    covered.append((lid, k))
        if not covered:
            continue
        tid = f"{pid}_ne{len(tags) + 1}"
        tags.append((tid, ent))
        for lid, k in covered:
            lst = refs.setdefault(lid, {}).setdefault(k, [])
            if tid not in lst:
                lst.append(tid)
    return tags, refs


def build_alto(
    page: PageImage,
    seg: PageSegmentation,
    text: PageText | None,
    steps: Sequence[ProcessingStep] = (),
    *,
    keep_line_ids: bool = False,
    entities: Sequence[Any] = (),
) -> etree._ElementTree:
    """ALTO 4.4 tree of one page (see the module docstring for geometry and id rules).

    `keep_line_ids`: TextLine IDs are the segmentation's own line ids (e.g. from an
    eScriptorium export being re-read), made NCName-safe, instead of `{pid}_l{n}`.

    `entities` (optional; htr.index.entities.Entity or anything with `type`, `surface`,
    `normalised` and `spans` = (line_id, start, end) character spans in the text of segmentation
    lines) become `NamedEntityTag`s in `Tags` (ID `<pid>_ne<n>`, TYPE, LABEL = normalised form,
    DESCRIPTION = surface form), referenced by TAGREFS on every String they cover.
    """
    width = int(page.width or seg.width)
    height = int(page.height or seg.height)
    if width < 1 or height < 1:
        raise AltoError(f"page size {width}x{height} is not positive", path=page.path, page_id=page.ref.id)
    geom = _Geom(width, height)
    pid = xml_id(page.ref.id)

    root = etree.Element(_A + "alto", nsmap={None: ALTO_NS, "xsi": XSI_NS}, SCHEMAVERSION=SCHEMA_VERSION)
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{ALTO_NS} {SCHEMA_LOCATION}")
    proc_ids = _description(root, page, steps, pid)

    blocks = _blocks(seg)
    # Tags: one OtherTag per block / line type, referenced by TAGREFS.
    tag_ids: dict[tuple[str, str], str] = {}
    kinds = [("block", b.region.type) for b in blocks if b.region is not None]
    kinds += [("line", ln.type) for b in blocks for ln in b.lines]
    for kind, label in kinds:
        if label and (kind, label) not in tag_ids:
            tag_ids[(kind, label)] = f"{pid}_tag{len(tag_ids) + 1}"
    ne_tags, ne_refs = _entity_refs(seg, text, entities, pid) if entities else ([], {})
    if tag_ids or ne_tags:
        tags = etree.SubElement(root, _A + "Tags")
        for (kind, label), tid in tag_ids.items():
            etree.SubElement(
                tags, _A + "OtherTag", ID=tid, LABEL=xml_text(label), DESCRIPTION=xml_text(f"{kind} type {label}")
            )
        for tid, ent in ne_tags:
            surface = xml_text(getattr(ent, "surface", "") or "")
            label = xml_text(getattr(ent, "normalised", "") or "") or surface or xml_text(getattr(ent, "type", ""))
            el = etree.SubElement(tags, _A + "NamedEntityTag", ID=tid, LABEL=label or "entity")
            etype = xml_text(getattr(ent, "type", "") or "")
            if etype:
                el.set("TYPE", etype)
            if surface:
                el.set("DESCRIPTION", surface)

    block_ids = [f"{pid}_b{n}" for n in range(1, len(blocks) + 1)]
    if blocks:
        ro = etree.SubElement(root, _A + "ReadingOrder")
        og = etree.SubElement(ro, _A + "OrderedGroup", ID=f"{pid}_ro")
        for n, bid in enumerate(block_ids, 1):
            etree.SubElement(og, _A + "ElementRef", ID=f"{pid}_ro{n}", REF=bid)

    layout = etree.SubElement(root, _A + "Layout")
    pg = etree.SubElement(
        layout,
        _A + "Page",
        ID=pid,
        PHYSICAL_IMG_NR=str(int(page.ref.index) + 1),
        WIDTH=str(width),
        HEIGHT=str(height),
    )
    if proc_ids:
        pg.set("PROCESSINGREFS", " ".join(proc_ids))
    ps = etree.SubElement(pg, _A + "PrintSpace", ID=f"{pid}_ps")
    _set_box(ps, (0, 0, width, height))

    texts = _texts_by_line(text)
    n_line = 0
    used_ids: set[str] = set()
    for blk, bid in zip(blocks, block_ids):
        region_pts = geom.points(blk.region.polygon) if blk.region is not None else ()
        line_geo = []
        for ln in blk.lines:
            poly = geom.points(ln.polygon)
            base = geom.points(ln.baseline)
            pts = poly or base
            if pts:
                lbox = geom.box_of(pts)
            elif region_pts:
                lbox = geom.box_of(region_pts)
            else:
                lbox = (0, 0, width, height)
            line_geo.append((ln, lbox, poly, base))
        if region_pts:
            bbox = geom.box_of(region_pts)
        elif line_geo:
            bbox = _union([g[1] for g in line_geo])
        else:  # unreachable: _blocks only keeps line-less regions that have a polygon
            bbox = (0, 0, width, height)
        tb = etree.SubElement(ps, _A + "TextBlock", ID=bid)
        _set_box(tb, bbox)
        if blk.region is not None and (tagref := tag_ids.get(("block", blk.region.type))):
            tb.set("TAGREFS", tagref)
        _add_shape(tb, region_pts)
        for ln, lbox, poly, base in line_geo:
            n_line += 1
            lid = f"{pid}_l{n_line}"
            if keep_line_ids:
                kept = _ID_BAD.sub("_", str(ln.id))
                kept = kept if re.match(r"[A-Za-z_]", kept) else f"l_{kept}"
                lid = kept if kept not in used_ids else lid
            used_ids.add(lid)
            tl = etree.SubElement(tb, _A + "TextLine", ID=lid)
            _set_box(tl, lbox)
            if len(base) >= 2:
                tl.set("BASELINE", _points_attr(base))
            if tagref := tag_ids.get(("line", ln.type)):
                tl.set("TAGREFS", tagref)
            _add_shape(tl, poly)
            _strings(tl, lid, lbox, _take(texts, ln.id), ne_refs.pop(ln.id, None))
    return etree.ElementTree(root)


def line_texts(seg: PageSegmentation, text: PageText | None) -> list[tuple[Line, LineText | None]]:
    """The lines of `seg` in the order the ALTO gets them, each with its recognised text (None when unread)."""
    texts = _texts_by_line(text)
    return [(ln, _take(texts, ln.id)) for ln in _ordered_lines(seg)]


def page_text(seg: PageSegmentation, text: PageText | None) -> str:
    """Plain text of the page in the ALTO reading order: one line per TextLine (empty lines kept), `\\n`-terminated."""
    return "".join((xml_text(lt.text) if lt else "") + "\n" for _, lt in line_texts(seg, text))


# --------------------------------------------------------------------------- output


def alto_bytes(tree: etree._ElementTree | etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration, pretty printed."""
    if isinstance(tree, etree._Element):
        tree = tree.getroottree()
    if not isinstance(tree, etree._ElementTree):
        raise AltoError(f"cannot serialise {type(tree).__name__} as ALTO (not an lxml tree)")
    try:
        return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    except (ValueError, TypeError, etree.Error) as exc:
        raise AltoError(f"cannot serialise ALTO: {exc}") from exc


def write_alto(path: Path, tree: etree._ElementTree | etree._Element) -> None:
    """Write `tree` to `path` atomically (see `htr.atomic.write_bytes`).

    On any failure `path` is left as it was (absent or the previous complete file) and no temp file remains.
    """
    data = alto_bytes(tree)  # serialise first: a bad tree never touches the disk
    try:
        atomic.write_bytes(path, data)
    except OSError as exc:
        raise AltoError(f"cannot write ALTO: {exc}", path=str(path)) from exc
