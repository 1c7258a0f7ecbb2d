"""The one reader of ALTO (v2-v4) and PAGE files, ours or a third party's (eScriptorium, HTR-United),
into the frozen page model of `alto.model`.

Every file goes through the hardened parser (`core.safexml`). A file that cannot be used raises the
project's own errors: `XmlError` (refused, not well-formed, unreadable) or `AltoError` (not ALTO or
PAGE, no Page element), each naming the file.

Reading order: blocks (ALTO TextBlocks, PAGE TextRegions) in the order of the ReadingOrder's
references when there are any (ALTO ElementRef/@REF; PAGE RegionRefIndexed sorted by @index within
their OrderedGroup, RegionRef in document order), then the remaining blocks in document order;
lines and words in document order inside their block. TextLines outside any block are not read.

Boxes are rounded to integer pixels; a String without a box gets its TextLine's box, a TextLine
without one gets its polygon's, else the page's. Points read as `x y x y ...` or `x,y x,y ...`; a
list that is not numeric pairs reads as ().

Hyphenation (ALTO): `SUBS_TYPE="HypPart1|HypPart2"` + `SUBS_CONTENT` give the full word of both
parts; a `HYP` element after a line's last String joins it to the next line's first String;
otherwise a line-final word ending in a hyphen followed by a line starting with a lower-case letter
is joined with it (the writer of this project does not emit HYP yet).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lxml import etree

from alto.model import Page, Points, String, Tag, TextBlock, TextLine, WBox
from core import safexml
from core.errors import AltoError, XmlError

HYPHENS = ("-", "¬", "\u00ad", "\u2010", "\u2011")  # a line-final one of these may split a word


def hyphen_stem(word: str) -> str | None:
    """`word` without its final hyphen when it looks like the first part of a hyphenated word
    (`provi-` -> `provi`), else None (`-`, `12-`, `M.-`, plain words)."""
    w = word.rstrip()
    if len(w) < 2 or not w.endswith(HYPHENS):
        return None
    stem = w[:-1]
    return stem if stem[-1:].isalpha() else None


def continues_word(word: str) -> bool:
    """True when `word` can be the second part of a hyphenated word (starts with a lower-case letter)."""
    w = word.lstrip()
    return bool(w) and w[0].isalpha() and w[0].islower()


def _local(el: etree._Element) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _num(el: etree._Element, attr: str) -> float | None:
    try:
        return float((el.get(attr) or "").strip())
    except ValueError:
        return None


def _box(el: etree._Element) -> WBox | None:
    vals = [v for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT") if (v := _num(el, a)) is not None]
    if len(vals) < 4:
        return None
    try:
        x, y, w, h = (int(round(v)) for v in vals)
    except (ValueError, OverflowError):  # nan, inf
        return None
    return (x, y, max(w, 1), max(h, 1))


def _wc(el: etree._Element) -> float | None:
    v = _num(el, "WC")
    return v if v is not None and 0.0 <= v <= 1.0 else None


def points(value: str | None) -> Points:
    """`x y x y ...` or `x,y x,y ...` as integer points; () when not a list of numeric pairs."""
    try:
        nums = [int(round(float(v))) for v in (value or "").replace(",", " ").split()]
    except (ValueError, OverflowError):  # not a number, nan, inf
        return ()
    if len(nums) < 4 or len(nums) % 2:
        return ()
    return tuple((nums[i], nums[i + 1]) for i in range(0, len(nums), 2))


def _bbox(pts: Points) -> WBox | None:
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(max(xs) - min(xs), 1), max(max(ys) - min(ys), 1))


def _alto_polygon(el: etree._Element) -> Points:
    for child in el:
        if _local(child) == "Shape":
            for poly in child:
                if _local(poly) == "Polygon":
                    return points(poly.get("POINTS"))
    return ()


def _in_reading_order(blocks: list[etree._Element], order: list[str], id_attr: str) -> list[etree._Element]:
    """`blocks` in the order of `order` (ids), the ones it does not name after them in document order."""
    if not order:
        return blocks
    rank: dict[str, int] = {}
    for ref in order:
        rank.setdefault(ref, len(rank))
    return sorted(blocks, key=lambda b: (0, rank[b.get(id_attr)]) if b.get(id_attr) in rank else (1, 0))


def _parse(path: Path, data: bytes | None) -> etree._Element:
    return safexml.parse(path, data).getroot()  # XmlError: refused, not well-formed, unreadable


def read_page(path: str | Path, data: bytes | None = None) -> Page:
    """Read one ALTO or PAGE file (or its bytes `data`); raises XmlError or AltoError naming the file."""
    path = Path(path)
    root = _parse(path, data)
    local = _local(root)
    if local == "alto":
        return _read_alto(path, root)
    if local == "PcGts":
        return _read_pagexml(path, root)
    raise AltoError(f"not ALTO or PAGE (root element <{local}>)", path=str(path))


def read_alto(path: str | Path, data: bytes | None = None) -> Page:
    """Read one ALTO file (or its bytes `data`); raises AltoError naming the file for anything unusable."""
    path = Path(path)
    try:
        root = _parse(path, data)
    except XmlError as exc:  # refused (DTD, entities, size, depth), not well-formed, unreadable
        raise AltoError(f"cannot read ALTO: {exc.message}", path=str(path)) from exc
    if _local(root) != "alto":
        raise AltoError(f"not ALTO (root element <{_local(root)}>)", path=str(path))
    return _read_alto(path, root)


def _page_element(path: Path, root: etree._Element, w_attr: str, h_attr: str) -> tuple[etree._Element, int, int]:
    """The first Page element, its width and height (ALTO WIDTH/HEIGHT, PAGE imageWidth/imageHeight)."""
    page = next((el for el in root.iter(etree.Element) if _local(el) == "Page"), None)
    if page is None:
        raise AltoError("no Page element", path=str(path))
    return page, int(round(_num(page, w_attr) or 0)), int(round(_num(page, h_attr) or 0))


def _read_alto(path: Path, root: etree._Element) -> Page:
    page, width, height = _page_element(path, root, "WIDTH", "HEIGHT")
    page_box = (0, 0, max(width, 1), max(height, 1))

    tags: list[Tag] = []
    for el in root.iter(etree.Element):
        parent = el.getparent()
        if parent is not None and _local(parent) == "Tags" and el.get("ID"):
            tags.append(
                Tag(el.get("ID"), _local(el), el.get("TYPE") or "", el.get("LABEL") or "", el.get("DESCRIPTION") or "")
            )

    order = [el.get("REF") for el in root.iter(etree.Element) if _local(el) == "ElementRef" and el.get("REF")]
    blocks = _in_reading_order([el for el in page.iter(etree.Element) if _local(el) == "TextBlock"], order, "ID")

    lines: list[TextLine] = []
    ablocks: list[TextBlock] = []
    seen: set[etree._Element] = set()  # the elements themselves: id() of lxml proxies can be reused
    for block in blocks:
        bid = block.get("ID") or f"block{len(ablocks) + 1}"
        ablocks.append(TextBlock(bid, _box(block) or page_box, _alto_polygon(block)))
        for tl in block.iter(etree.Element):
            if _local(tl) != "TextLine" or tl in seen:
                continue
            seen.add(tl)
            own = _box(tl)
            lbox = own or page_box
            words: list[String] = []
            has_hyp = False
            pos = 0
            for child in tl:
                name = _local(child)
                if name == "String":
                    content = child.get("CONTENT") or ""
                    if words:
                        pos += 1
                    st = child.get("SUBS_TYPE") or ""
                    sc = child.get("SUBS_CONTENT")
                    hyph = (1 if st == "HypPart1" else 2) if st in ("HypPart1", "HypPart2") and sc else 0
                    words.append(
                        String(
                            content,
                            _box(child) or lbox,
                            child.get("ID") or "",
                            tuple((child.get("TAGREFS") or "").split()),
                            sc if hyph else None,
                            hyph,
                            pos,
                            pos + len(content),
                            _wc(child),
                        )
                    )
                    pos += len(content)
                elif name == "HYP":
                    has_hyp = True
            lines.append(
                TextLine(
                    tl.get("ID") or f"line{len(lines) + 1}",
                    lbox,
                    tuple(words),
                    " ".join(w.content for w in words),
                    bid,
                    _alto_polygon(tl),
                    points(tl.get("BASELINE")),
                    has_hyp,
                    own is not None,
                )
            )

    # hyphenated words without SUBS_CONTENT: HYP element, or a trailing hyphen (heuristic)
    for k in range(len(lines) - 1):
        cur, nxt = lines[k], lines[k + 1]
        if not cur.words or not nxt.words:
            continue
        a, b = cur.words[-1], nxt.words[0]
        if a.hyph or b.hyph:
            continue
        stem: str | None
        if cur.has_hyp:
            stem = a.content.rstrip("-¬")
        else:
            stem = hyphen_stem(a.content)
            if stem is None or not continues_word(b.content):
                continue
        full = stem + b.content
        lines[k] = replace(cur, words=(*cur.words[:-1], replace(a, full=full, hyph=1)))
        lines[k + 1] = replace(nxt, words=(replace(b, full=full, hyph=2), *nxt.words[1:]))
    file_name = next(((el.text or "").strip() for el in root.iter(etree.Element) if _local(el) == "fileName"), "")
    return Page(path, "alto", width, height, tuple(lines), tuple(ablocks), tuple(tags), file_name)


def _page_order(root: etree._Element) -> list[str]:
    """Region ids of a PAGE ReadingOrder: RegionRefIndexed by @index within each group, RegionRef as they come."""
    order: list[str] = []
    for group in root.iter(etree.Element):
        if _local(group) not in ("OrderedGroup", "UnorderedGroup", "OrderedGroupIndexed", "UnorderedGroupIndexed"):
            continue
        refs = []
        for n, el in enumerate(group):
            if _local(el) in ("RegionRefIndexed", "RegionRef") and el.get("regionRef"):
                try:
                    idx = int(el.get("index") or n)
                except ValueError:
                    idx = n
                refs.append((idx, n, el.get("regionRef")))
        order += [ref for _, _, ref in sorted(refs)]
    return order


def _read_pagexml(path: Path, root: etree._Element) -> Page:
    page, width, height = _page_element(path, root, "imageWidth", "imageHeight")
    page_box = (0, 0, max(width, 1), max(height, 1))

    def child(el: etree._Element, name: str) -> etree._Element | None:
        return next((c for c in el if _local(c) == name), None)

    regions = _in_reading_order(
        [el for el in page.iter(etree.Element) if _local(el) == "TextRegion"], _page_order(root), "id"
    )
    lines: list[TextLine] = []
    blocks: list[TextBlock] = []
    for region in regions:
        rid = region.get("id") or f"region{len(blocks) + 1}"
        coords = child(region, "Coords")
        rpoly = points(coords.get("points")) if coords is not None else ()
        blocks.append(TextBlock(rid, _bbox(rpoly) or page_box, rpoly))
        for tl in region:
            if _local(tl) != "TextLine":
                continue
            coords, base, equiv = child(tl, "Coords"), child(tl, "Baseline"), child(tl, "TextEquiv")
            uni = child(equiv, "Unicode") if equiv is not None else None
            poly = points(coords.get("points")) if coords is not None else ()
            box = _bbox(poly)
            lines.append(
                TextLine(
                    tl.get("id") or f"line{len(lines) + 1}",
                    box or page_box,
                    (),
                    (uni.text or "") if uni is not None else "",
                    rid,
                    poly,
                    points(base.get("points")) if base is not None else (),
                    False,
                    box is not None,
                )
            )
    return Page(path, "page", width, height, tuple(lines), tuple(blocks), (), (page.get("imageFilename") or "").strip())
