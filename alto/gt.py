"""Tolerant reader for ground-truth ALTO (v2-4) and PAGE files as found in real exports.

Copes with what HTR-United / eScriptorium exports contain: `&amp;` stored
double-escaped, image files one folder above the XML, PNG data behind a
`.jpg` name, lines without polygons and empty lines.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from htr import safexml
from htr.errors import XmlError

Point = tuple[int, int]


@dataclass(frozen=True)
class GTLine:
    """One ground-truth line: geometry in page pixels and its text."""

    id: str
    text: str
    baseline: tuple[Point, ...]
    polygon: tuple[Point, ...]
    region_id: str | None = None


@dataclass(frozen=True)
class GTPage:
    """One ground-truth page: its XML, its image and its lines in document order."""

    xml_path: Path
    image_path: Path
    width: int
    height: int
    lines: tuple[GTLine, ...]
    format: str  # "alto" or "page"

    @property
    def document(self) -> str:
        """Folder that identifies the document (the XML's folder, or its parent for alto/ & page/ subfolders)."""
        folder = self.xml_path.parent
        if folder.name in ("alto", "page", "xml"):
            folder = folder.parent
        return str(folder)


def normalize_text(text: str) -> str:
    """NFC, whitespace folded, double-escaped `&amp;` undone."""
    text = text.replace("&amp;", "&")
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def is_placeholder_line(text: str) -> bool:
    """True for lines that hide handwritten words behind `~~~` (tapuscorpus convention)."""
    return "~~~" in text


def _points(value: str | None, sep_pairs: bool = False) -> tuple[Point, ...]:
    if not value:
        return ()
    if sep_pairs:  # PAGE: "x,y x,y"
        nums = [float(v) for pair in value.split() for v in pair.split(",")]
    else:  # ALTO: "x y x y" (ALTO 4.0-4.1 sometimes "x,y x,y")
        nums = [float(v) for v in value.replace(",", " ").split()]
    return tuple((int(round(nums[i])), int(round(nums[i + 1]))) for i in range(0, len(nums) - 1, 2))


def resolve_image(xml_path: Path, name: str) -> Path:
    """Find the image an XML names: beside it, else one folder up (eScriptorium alto/ & page/ exports)."""
    name = name.strip()
    base = Path(name).name
    candidates = [xml_path.parent / name, xml_path.parent / base, xml_path.parent.parent / base]
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    raise FileNotFoundError(f"{xml_path}: image {name!r} not found beside the XML or one folder up")


def _image(xml_path: Path, name: str, require_image: bool) -> Path:
    try:
        return resolve_image(xml_path, name)
    except FileNotFoundError:
        if require_image:
            raise
        return xml_path.parent / Path(name.strip()).name  # unresolved: predictions live apart from their images


def _read_alto(path: Path, root: etree._Element, require_image: bool = True) -> GTPage:
    ns = {"a": root.nsmap.get(None) or ""}

    def find(el: etree._Element, tag: str) -> list[etree._Element]:
        return el.findall(f".//{{{ns['a']}}}{tag}") if ns["a"] else el.findall(f".//{tag}")

    fn = find(root, "fileName")
    if not fn or not (fn[0].text or "").strip():
        raise ValueError(f"{path}: no sourceImageInformation/fileName")
    image = _image(path, fn[0].text, require_image)
    page = find(root, "Page")[0]
    lines = []
    for block in find(root, "TextBlock"):
        for tl in find(block, "TextLine"):
            strings = find(tl, "String")
            words = [s.get("CONTENT", "") for s in strings]
            text = normalize_text(" ".join(words))
            poly_el = find(tl, "Polygon")
            polygon = _points(poly_el[0].get("POINTS")) if poly_el else ()
            if not polygon and tl.get("HPOS") is not None:
                x, y = int(float(tl.get("HPOS"))), int(float(tl.get("VPOS")))
                w, h = int(float(tl.get("WIDTH"))), int(float(tl.get("HEIGHT")))
                polygon = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
            lines.append(
                GTLine(
                    id=tl.get("ID", f"line_{len(lines)}"),
                    text=text,
                    baseline=_points(tl.get("BASELINE")),
                    polygon=polygon,
                    region_id=block.get("ID"),
                )
            )
    return GTPage(path, image, int(float(page.get("WIDTH"))), int(float(page.get("HEIGHT"))), tuple(lines), "alto")


def _read_page(path: Path, root: etree._Element, require_image: bool = True) -> GTPage:
    ns = root.nsmap.get(None) or ""

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}" if ns else tag

    page = root.find(f".//{q('Page')}")
    image = _image(path, page.get("imageFilename", ""), require_image)
    lines = []
    for region in page.iter(q("TextRegion")):
        for tl in region.findall(q("TextLine")):
            coords = tl.find(q("Coords"))
            base = tl.find(q("Baseline"))
            uni = tl.find(f"{q('TextEquiv')}/{q('Unicode')}")
            text = normalize_text(uni.text or "" if uni is not None else "")
            lines.append(
                GTLine(
                    id=tl.get("id", f"line_{len(lines)}"),
                    text=text,
                    baseline=_points(base.get("points") if base is not None else None, sep_pairs=True),
                    polygon=_points(coords.get("points") if coords is not None else None, sep_pairs=True),
                    region_id=region.get("id"),
                )
            )
    return GTPage(path, image, int(page.get("imageWidth")), int(page.get("imageHeight")), tuple(lines), "page")


def read_gt(path: str | Path, require_image: bool = True) -> GTPage:
    """Read one ALTO or PAGE ground-truth file.

    With `require_image=False` a missing image is no error (`image_path` is then the
    unresolved name beside the XML): used to read predicted ALTO kept apart from its images.
    """
    path = Path(path)
    root = safexml.parse(path).getroot()  # XmlError: refused or not well-formed
    local = etree.QName(root).localname
    if local == "alto":
        return _read_alto(path, root, require_image)
    if local == "PcGts":
        return _read_page(path, root, require_image)
    raise ValueError(f"{path}: not ALTO or PAGE (root element <{local}>)")


def find_gt_files(
    sources: list[str | Path], prefer: str = "alto", problems: list[tuple[str, str]] | None = None
) -> list[Path]:
    """All ALTO/PAGE XML files under the sources; when a document has both, keep `prefer` only.

    Files that cannot be read as XML (refused, not well-formed) or are not ALTO/PAGE are left
    out; with `problems` given, each is appended to it as (path, one-line reason).
    """
    found: list[Path] = []
    for src in sources:
        src = Path(src)
        files = [src] if src.is_file() else sorted(src.rglob("*.xml"))
        for f in files:
            try:
                local = safexml.root_name(f)
            except XmlError as e:  # refused, not well-formed, unreadable: not ground truth
                if problems is not None:
                    problems.append((str(f), e.message))
                continue
            if local in ("alto", "PcGts"):
                found.append(f)
            elif problems is not None:
                problems.append((str(f), f"not ALTO or PAGE (root element <{local}>)"))
    # drop PAGE duplicates of pages that also exist as ALTO (lectaurep-bronod alto/ + page/)
    other = "page" if prefer == "alto" else "alto"
    keep = []
    names = {(f.parent.parent, f.stem) for f in found if f.parent.name == prefer}
    for f in found:
        if f.parent.name == other and (f.parent.parent, f.stem) in names:
            continue
        keep.append(f)
    return keep
