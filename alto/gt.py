"""Ground truth (ALTO v2-4 and PAGE files as found in real exports), read through the one reader
(`alto.reader`) into the one page model (`alto.model`).

Copes with what HTR-United / eScriptorium exports contain: `&amp;` stored
double-escaped, image files one folder above the XML, PNG data behind a
`.jpg` name, lines without polygons and empty lines.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from alto.model import Page, TextLine
from alto.reader import read_page
from core import safexml
from core.errors import AltoError, InputError, XmlError

# Ground truth is read into the one page model (`alto.model`); these names are what evaluation and
# training have always called it.
GTPage = Page
GTLine = TextLine


def normalize_text(text: str) -> str:
    """NFC, whitespace folded, double-escaped `&amp;` undone."""
    text = text.replace("&amp;", "&")
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def is_placeholder_line(text: str) -> bool:
    """True for lines that hide handwritten words behind `~~~` (tapuscorpus convention)."""
    return "~~~" in text


def resolve_image(xml_path: Path, name: str) -> Path:
    """Find the image an XML names: beside it, else one folder up (eScriptorium alto/ & page/ exports)."""
    name = name.strip()
    base = Path(name).name
    candidates = [xml_path.parent / name, xml_path.parent / base, xml_path.parent.parent / base]
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    raise InputError(f"image {name!r} not found beside the XML or one folder up", path=str(xml_path))


def read_gt(path: str | Path, require_image: bool = True) -> Page:
    """Read one ALTO or PAGE ground-truth file (through `alto.reader.read_page`, so in reading order)
    as evaluation and training use it: each line's text normalised (`normalize_text`), a line without
    a polygon outlined by its own box, and the page's image found.

    With `require_image=False` a missing image is no error (`image_path` is then the unresolved name
    beside the XML): used to read predicted ALTO kept apart from its images. Raises XmlError,
    AltoError or InputError (image not found), each naming the file.
    """
    page = read_page(path)
    if page.format == "alto" and not page.file_name:
        raise AltoError("no sourceImageInformation/fileName", path=str(page.xml_path))
    try:
        image = resolve_image(page.xml_path, page.file_name)
    except InputError:
        if require_image:
            raise
        image = page.xml_path.parent / Path(page.file_name).name  # unresolved: predictions live apart from their images
    lines = tuple(replace(ln, text=normalize_text(ln.text), polygon=ln.outline()) for ln in page.lines)
    return replace(page, lines=lines, image_path=image)


def find_gt_files(
    sources: Sequence[str | Path], prefer: str = "alto", problems: list[tuple[str, str]] | None = None
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
