"""Read any ALTO v2-v4 page (ours or a third party's, e.g. an eScriptorium export) into what the
index stores: lines in reading order, words with boxes, hyphenation, named entities.

Also kept for exports and the reading room (not indexed): each String's confidence (WC), each
TextLine's polygon and baseline, and the TextBlocks (id, box, polygon) in reading order.

Reading order: TextBlocks in the order of the first ReadingOrder/OrderedGroup ElementRefs when
there are any, then the remaining blocks in document order; lines and Strings in document order.
Boxes are rounded to integer pixels (HPOS, VPOS, WIDTH, HEIGHT); a String without a box gets its
TextLine's box.

Hyphenation: `SUBS_TYPE="HypPart1|HypPart2"` + `SUBS_CONTENT` give the full word of both parts; a
`HYP` element after a line's last String joins it to the next line's first String; otherwise a
line-final word ending in `-` or `¬` followed by a line starting with a lower-case letter is
joined with it (the writer of this project does not emit HYP yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from htr import safexml
from htr.errors import AltoError, XmlError
from htr.index.text import continues_word, hyphen_stem

WBox = tuple[int, int, int, int]  # HPOS, VPOS, WIDTH, HEIGHT
Points = tuple[tuple[int, int], ...]


@dataclass
class AWord:
    content: str
    box: WBox
    string_id: str = ""
    tagrefs: tuple[str, ...] = ()
    full: str | None = None  # the whole word when this is one part of a hyphenated word
    hyph: int = 0  # 0, 1 (first part) or 2 (second part)
    start: int = 0  # character offsets in the line text
    end: int = 0
    wc: float | None = None  # word confidence 0..1 (ALTO WC), None when absent or not a number


@dataclass
class ALine:
    line_id: str
    box: WBox
    words: list[AWord] = field(default_factory=list)
    has_hyp: bool = False
    text: str = ""
    block_id: str = ""
    polygon: Points = ()
    baseline: Points = ()


@dataclass(frozen=True)
class ABlock:
    id: str
    box: WBox
    polygon: Points = ()


@dataclass
class ATag:
    id: str
    kind: str  # NamedEntityTag, OtherTag, ...
    type: str
    label: str
    description: str


@dataclass
class APage:
    width: int
    height: int
    lines: list[ALine]
    tags: dict[str, ATag]
    blocks: list[ABlock] = field(default_factory=list)  # in reading order
    file_name: str = ""  # sourceImageInformation/fileName


def _local(el: etree._Element) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _num(el: etree._Element, attr: str) -> float | None:
    try:
        return float((el.get(attr) or "").strip())
    except ValueError:
        return None


def _box(el: etree._Element) -> WBox | None:
    vals = [_num(el, a) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
    if any(v is None for v in vals):
        return None
    x, y, w, h = (int(round(v)) for v in vals)
    return (x, y, max(w, 1), max(h, 1))


def _wc(el: etree._Element) -> float | None:
    v = _num(el, "WC")
    return v if v is not None and 0.0 <= v <= 1.0 else None


def _points(value: str | None) -> Points:
    """`x y x y ...` or `x,y x,y ...` as integer points; () when not a list of numeric pairs."""
    try:
        nums = [int(round(float(v))) for v in (value or "").replace(",", " ").split()]
    except (ValueError, OverflowError):  # not a number, nan, inf
        return ()
    if len(nums) < 4 or len(nums) % 2:
        return ()
    return tuple((nums[i], nums[i + 1]) for i in range(0, len(nums), 2))


def _polygon(el: etree._Element) -> Points:
    for child in el:
        if _local(child) == "Shape":
            for poly in child:
                if _local(poly) == "Polygon":
                    return _points(poly.get("POINTS"))
    return ()


def read_alto(path: str | Path, data: bytes | None = None) -> APage:
    """Parse one ALTO file (or its bytes `data`); raises AltoError (naming the file) when it cannot be read."""
    path = Path(path)
    try:
        root = safexml.parse(path, data).getroot()
    except XmlError as exc:  # refused (DTD, entities, size, depth), not well-formed, unreadable
        raise AltoError(f"cannot read ALTO: {exc.message}", path=str(path)) from exc
    if _local(root) != "alto":
        raise AltoError(f"not ALTO (root element <{_local(root)}>)", path=str(path))
    page = next((el for el in root.iter(etree.Element) if _local(el) == "Page"), None)
    if page is None:
        raise AltoError("no Page element", path=str(path))
    width = int(round(_num(page, "WIDTH") or 0))
    height = int(round(_num(page, "HEIGHT") or 0))

    tags: dict[str, ATag] = {}
    for el in root.iter(etree.Element):
        parent = el.getparent()
        if parent is not None and _local(parent) == "Tags" and el.get("ID"):
            tags[el.get("ID")] = ATag(el.get("ID"), _local(el), el.get("TYPE") or "", el.get("LABEL") or "",
                                      el.get("DESCRIPTION") or "")

    blocks = [el for el in page.iter(etree.Element) if _local(el) == "TextBlock"]
    order: list[str] = []
    for el in root.iter(etree.Element):
        if _local(el) == "ElementRef" and el.get("REF"):
            order.append(el.get("REF"))
    if order:
        rank = {}
        for ref in order:
            rank.setdefault(ref, len(rank))
        blocks = sorted(blocks, key=lambda b: (0, rank[b.get("ID")]) if b.get("ID") in rank else (1, 0))
        # stable sort keeps document order among blocks the reading order does not name

    lines: list[ALine] = []
    ablocks: list[ABlock] = []
    seen: set[etree._Element] = set()  # the elements themselves: id() of lxml proxies can be reused
    for block in blocks:
        bid = block.get("ID") or f"block{len(ablocks) + 1}"
        ablocks.append(ABlock(bid, _box(block) or (0, 0, max(width, 1), max(height, 1)), _polygon(block)))
        for tl in block.iter(etree.Element):
            if _local(tl) != "TextLine" or tl in seen:
                continue
            seen.add(tl)
            lbox = _box(tl) or (0, 0, max(width, 1), max(height, 1))
            line = ALine(tl.get("ID") or f"line{len(lines) + 1}", lbox, block_id=bid, polygon=_polygon(tl),
                         baseline=_points(tl.get("BASELINE")))
            for child in tl:
                name = _local(child)
                if name == "String":
                    content = child.get("CONTENT") or ""
                    w = AWord(content, _box(child) or lbox, child.get("ID") or "",
                              tuple((child.get("TAGREFS") or "").split()), wc=_wc(child))
                    st = child.get("SUBS_TYPE") or ""
                    sc = child.get("SUBS_CONTENT")
                    if st in ("HypPart1", "HypPart2") and sc:
                        w.full = sc
                        w.hyph = 1 if st == "HypPart1" else 2
                    line.words.append(w)
                elif name == "HYP":
                    line.has_hyp = True
            lines.append(line)

    for line in lines:
        parts, pos = [], 0
        for w in line.words:
            if parts:
                pos += 1
            w.start, w.end = pos, pos + len(w.content)
            parts.append(w.content)
            pos = w.end
        line.text = " ".join(parts)

    # hyphenated words without SUBS_CONTENT: HYP element, or a trailing hyphen (heuristic)
    for k in range(len(lines) - 1):
        cur, nxt = lines[k], lines[k + 1]
        if not cur.words or not nxt.words:
            continue
        a, b = cur.words[-1], nxt.words[0]
        if a.hyph or b.hyph:
            continue
        if cur.has_hyp:
            stem = a.content.rstrip("-¬")
        else:
            stem = hyphen_stem(a.content)
            if stem is None or not continues_word(b.content):
                continue
        a.full = b.full = stem + b.content
        a.hyph, b.hyph = 1, 2
    file_name = next(((el.text or "").strip() for el in root.iter(etree.Element) if _local(el) == "fileName"), "")
    return APage(width, height, lines, tags, ablocks, file_name)
