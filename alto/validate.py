"""Validate ALTO v4 files: the XSD (offline) plus the rules the XSD cannot express.

Works on any ALTO v4 file, not only the ones this project writes: attributes may be
missing (the rule is then skipped), coordinates may be floats, points may be written
`x y x y` or `x,y x,y`.

Rules (`Problem.rule`):
- `xml`           the file cannot be read or is not well-formed XML;
- `xsd`           one per schema error (message starts with `line N:`);
- `unique-id`     an `ID` value used more than once;
- `inside-page`   a block/TextLine/String box or a BASELINE/Polygon point outside its Page
                  WIDTH x HEIGHT (boxes: 0 <= HPOS, HPOS+WIDTH <= WIDTH; points: 0 <= x <= WIDTH);
- `word-in-line`  a String box not inside its TextLine box;
- `positive-size` a WIDTH or HEIGHT that is not > 0;
- `wc-range`      a confidence (String WC, Glyph GC, Variant VC, Page PC) outside [0, 1];
- `tagrefs`       a TAGREFS id that is not the ID of a child of `Tags`;
- `baseline`      a BASELINE that is not a list of at least 2 points (a single number, the
                  ALTO <= 4.1 form, is accepted);
- `points`        a Polygon POINTS value that is not a list of numeric x y pairs.

Run as `python -m alto.validate PATH...` to print the problems (exit status 1 if any).
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from core import safexml
from core.errors import AltoError, XmlError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DEFAULT_XSD = SCHEMA_DIR / "alto-4-4.xsd"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

BOX_ELEMENTS = frozenset({"TextBlock", "TextLine", "String", "Illustration", "GraphicalElement", "ComposedBlock"})
CONFIDENCE_ATTRS = {"String": "WC", "Glyph": "GC", "Variant": "VC", "Page": "PC"}
EPS = 1e-6

_validate_lock = threading.Lock()  # an lxml XMLSchema keeps its error log on the object: one validation at a time


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one ALTO file."""

    path: str
    element_id: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"[{self.element_id}] " if self.element_id else ""
        return f"{self.path}: {where}{self.rule}: {self.message}"


# --------------------------------------------------------------------------- schema


def schema(path: Path | None = None) -> etree.XMLSchema:
    """The compiled ALTO schema (cached per file; default: the vendored alto-4-4.xsd).

    Remote `xsd:import`/`xsd:include` locations are redirected, in memory, to the file of
    the same name next to the schema, else in `alto/schemas/`: the network is never used.
    """
    return _schema(str(Path(path or DEFAULT_XSD).resolve()))


@functools.lru_cache(maxsize=8)
def _schema(path: str) -> etree.XMLSchema:
    xsd = Path(path)
    try:
        doc = safexml.parse(xsd)
    except XmlError as exc:
        raise AltoError(f"cannot read schema: {exc.message}", path=path) from exc
    for el in doc.getroot().iter(f"{{{XSD_NS}}}import", f"{{{XSD_NS}}}include"):
        loc = el.get("schemaLocation") or ""
        if "://" not in loc or loc.startswith("file:"):
            continue
        name = loc.rstrip("/").rsplit("/", 1)[-1]
        local = next((p for p in (xsd.parent / name, SCHEMA_DIR / name) if p.is_file()), None)
        if local is None:
            raise AltoError(f"schema imports {loc} and no local copy of {name} exists", path=path)
        el.set("schemaLocation", local.resolve().as_uri())
    try:
        return etree.XMLSchema(doc)
    except etree.XMLSchemaParseError as exc:
        raise AltoError(f"invalid schema: {exc}", path=path) from exc


# --------------------------------------------------------------------------- helpers


def _parse(path: Path) -> etree._ElementTree:
    return safexml.parse(path)  # raises XmlError: refused (DTD, entities, size, depth) or not well-formed


def _local(el: etree._Element) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _num(el: etree._Element, attr: str) -> float | None:
    v = el.get(attr)
    if v is None:
        return None
    try:
        return float(v.strip())
    except ValueError:
        return None  # not a float: the XSD reports it


def _xywh(el: etree._Element) -> tuple[float, float, float, float] | None:
    """HPOS, VPOS, WIDTH, HEIGHT, or None when one is missing or not a number."""
    x, y, w, h = (_num(el, a) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    return None if x is None or y is None or w is None or h is None else (x, y, w, h)


def _sticks_out(box: tuple[float, float, float, float], outer: tuple[float, float, float, float]) -> bool:
    (x, y, w, h), (ox, oy, ow, oh) = box, outer
    return x < ox - EPS or y < oy - EPS or x + w > ox + ow + EPS or y + h > oy + oh + EPS


def _fmt_box(box: tuple[float, float, float, float]) -> str:
    x, y, w, h = box
    return f"{_fmt(x)},{_fmt(y)} {_fmt(w)}x{_fmt(h)}"


def _owner_id(el: etree._Element | None) -> str | None:
    """ID of the element or of its nearest ancestor that has one."""
    while el is not None:
        if isinstance(el.tag, str) and el.get("ID"):
            return el.get("ID")
        el = el.getparent()
    return None


def _points(value: str) -> list[tuple[float, float]]:
    """`x y x y ...` or `x,y x,y ...` as points; ValueError if not numeric pairs."""
    nums = [float(t) for t in value.replace(",", " ").split()]
    if len(nums) % 2:
        raise ValueError(f"odd number of coordinates ({len(nums)})")
    if any(math.isnan(n) or math.isinf(n) for n in nums):
        raise ValueError("non-finite coordinate")
    return list(zip(nums[::2], nums[1::2]))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _elements(doc: etree._ElementTree) -> Iterator[etree._Element]:
    return doc.getroot().iter(etree.Element)


# --------------------------------------------------------------------------- rules


def _rule_problems(doc: etree._ElementTree, where: str) -> list[Problem]:
    out: list[Problem] = []

    def add(el: etree._Element, rule: str, msg: str, eid: str | None = None) -> None:
        out.append(Problem(where, eid if eid is not None else _owner_id(el), rule, f"line {el.sourceline}: {msg}"))

    seen: dict[str, int | None] = {}
    tag_ids: set[str] = set()
    tagrefs: list[etree._Element] = []
    for el in _elements(doc):
        name = _local(el)
        eid = el.get("ID")
        if eid is not None:
            if eid in seen:
                add(el, "unique-id", f"{name} ID {eid!r} already used at line {seen[eid]}", eid)
            else:
                seen[eid] = el.sourceline
            parent = el.getparent()
            if parent is not None and _local(parent) == "Tags":
                tag_ids.add(eid)
        if el.get("TAGREFS") is not None:
            tagrefs.append(el)
        for attr in ("WIDTH", "HEIGHT"):
            v = _num(el, attr)
            if v is not None and not v > 0:
                add(el, "positive-size", f"{name} {attr}={el.get(attr)} is not > 0")
        conf = CONFIDENCE_ATTRS.get(name)
        if conf:
            v = _num(el, conf)
            if v is not None and not 0 <= v <= 1:
                add(el, "wc-range", f"{name} {conf}={el.get(conf)} is outside [0, 1]")
        if name == "TextLine" and el.get("BASELINE") is not None:
            value = el.get("BASELINE").strip()
            try:
                pts = _points(value)
            except ValueError as exc:
                legacy = False
                try:
                    legacy = len(value.split()) == 1 and "," not in value and math.isfinite(float(value))
                except ValueError:
                    pass
                if not legacy:  # one number: the ALTO <= 4.1 form (a y position), still valid
                    add(el, "baseline", f"BASELINE {value!r} is not a list of points: {exc}")
            else:
                if len(pts) < 2:
                    add(el, "baseline", f"BASELINE {value!r} has {len(pts)} point(s), needs at least 2")
        if name == "Polygon" and el.get("POINTS") is not None:
            try:
                _points(el.get("POINTS"))
            except ValueError as exc:
                add(el, "points", f"Polygon POINTS is not a list of x y pairs: {exc}")

    for el in tagrefs:
        for ref in el.get("TAGREFS").split():
            if ref not in tag_ids:
                add(el, "tagrefs", f"{_local(el)} TAGREFS {ref!r} is not the ID of a Tags entry")

    for page in doc.getroot().iter("{*}Page"):
        out.extend(_page_problems(page, where))
    return out


def _page_problems(page: etree._Element, where: str) -> list[Problem]:
    out: list[Problem] = []
    pw, ph = _num(page, "WIDTH"), _num(page, "HEIGHT")
    pw = pw if pw is not None and math.isfinite(pw) and pw > 0 else None
    ph = ph if ph is not None and math.isfinite(ph) and ph > 0 else None
    size = f"{_fmt(pw) if pw else '?'}x{_fmt(ph) if ph else '?'}"

    def add(el: etree._Element, rule: str, msg: str) -> None:
        out.append(Problem(where, _owner_id(el), rule, f"line {el.sourceline}: {msg}"))

    def outside(x: float, y: float) -> bool:
        return x < -EPS or y < -EPS or (pw is not None and x > pw + EPS) or (ph is not None and y > ph + EPS)

    for el in page.iter(etree.Element):
        name = _local(el)
        if name in BOX_ELEMENTS:
            x, y, w, h = (_num(el, a) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
            bad = (
                (x is not None and x < -EPS)
                or (y is not None and y < -EPS)
                or (pw is not None and x is not None and x + (w if w and w > 0 else 0) > pw + EPS)
                or (ph is not None and y is not None and y + (h if h and h > 0 else 0) > ph + EPS)
            )
            if bad:
                box = " ".join(f"{a}={el.get(a)}" for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT") if el.get(a) is not None)
                add(el, "inside-page", f"{name} box {box} is outside the page {size}")
            if name == "String":
                line = el.getparent()
                if line is not None and _local(line) == "TextLine":
                    sbox, lbox = _xywh(el), _xywh(line)  # a missing number: the XSD reports it
                    if sbox is not None and lbox is not None and _sticks_out(sbox, lbox):
                        add(
                            el,
                            "word-in-line",
                            f"String box {_fmt_box(sbox)} is not inside its TextLine box {_fmt_box(lbox)}",
                        )
        for attr, owner in (("BASELINE", "TextLine"), ("POINTS", "Polygon")):
            if name != owner or el.get(attr) is None:
                continue
            try:
                pts = _points(el.get(attr))
            except ValueError:
                continue  # reported by the baseline/points rule
            bad_pts = [p for p in pts if outside(*p)]
            if bad_pts:
                bx, by = bad_pts[0]
                add(
                    el,
                    "inside-page",
                    f"{owner} {attr} point {_fmt(bx)},{_fmt(by)} is outside the page {size}"
                    + (f" (and {len(bad_pts) - 1} more)" if len(bad_pts) > 1 else ""),
                )
    return out


# --------------------------------------------------------------------------- API


def _xsd_problems(doc: etree._ElementTree, xsd: etree.XMLSchema, where: str) -> list[Problem]:
    with _validate_lock:
        ok = xsd.validate(doc)
        errors = list(xsd.error_log) if not ok else []
    out = []
    for e in errors:
        eid = None
        try:
            found = doc.xpath(e.path) if e.path else []
            eid = _owner_id(found[0]) if found and isinstance(found[0], etree._Element) else None
        except (etree.XPathError, TypeError, IndexError):
            pass
        out.append(Problem(where, eid, "xsd", f"line {e.line}: {e.message}"))
    return out


def validate_file(path: Path | str, xsd_path: Path | None = None) -> list[Problem]:
    """Every problem of one ALTO file ([] when valid): `xml`, else `xsd` then the rule checks."""
    where = str(path)
    xsd = schema(xsd_path)
    try:
        doc = _parse(Path(path))
    except XmlError as exc:
        return [Problem(where, None, "xml", exc.message)]
    return _xsd_problems(doc, xsd, where) + _rule_problems(doc, where)


def validate_paths(paths: Sequence[Path | str], xsd_path: Path | None = None) -> list[Problem]:
    """Problems of every file given and of every *.xml under the folders given (sorted, recursive)."""
    out: list[Problem] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.xml") if f.is_file())
        elif p.exists():
            files = [p]
        else:
            out.append(Problem(str(p), None, "xml", "no such file or folder"))
            continue
        for f in files:
            out.extend(validate_file(f, xsd_path))
    return out


def is_valid(path: Path | str, xsd_path: Path | None = None) -> bool:
    """True when the file is well-formed, schema-valid and breaks no rule; never raises for a bad file.

    Cheap enough for resume checks: one parse, the cached schema, one pass over the elements.
    """
    try:
        doc = _parse(Path(path))
    except XmlError:
        return False
    with _validate_lock:
        ok = schema(xsd_path).validate(doc)
    return bool(ok) and not _rule_problems(doc, str(path))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m alto.validate PATH...", file=sys.stderr)
        return 2
    problems = validate_paths([Path(a) for a in args])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
