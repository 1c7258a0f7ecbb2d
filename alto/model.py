"""The one page model every reader of ALTO/PAGE in this project fills (`alto.reader.read_page`).

Frozen: what the index, the exports, the reading room, evaluation, training and
`--segmentation-from` get is a value they cannot change under each other.

Lines are in reading order (see `alto.reader`); words and their character offsets in the line text
are in document order. Boxes are `(HPOS, VPOS, WIDTH, HEIGHT)` rounded to integer pixels; points
are integer `(x, y)` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WBox = tuple[int, int, int, int]  # HPOS, VPOS, WIDTH, HEIGHT
Points = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class String:
    """One word (ALTO String)."""

    content: str
    box: WBox
    string_id: str = ""
    tagrefs: tuple[str, ...] = ()
    full: str | None = None  # the whole word when this is one part of a hyphenated word
    hyph: int = 0  # 0, 1 (first part) or 2 (second part)
    start: int = 0  # character offsets in the line text
    end: int = 0
    wc: float | None = None  # word confidence 0..1 (ALTO WC), None when absent or not a number


@dataclass(frozen=True)
class TextLine:
    """One line. `box` is the line's own box, else its polygon's, else the page (`box_given` says which)."""

    id: str
    box: WBox
    words: tuple[String, ...] = ()
    text: str = ""  # the words joined by one space (ALTO), or the line's TextEquiv (PAGE)
    block_id: str = ""
    polygon: Points = ()
    baseline: Points = ()
    has_hyp: bool = False  # an ALTO HYP element ends the line
    box_given: bool = True  # False when `box` is a fallback (no HPOS/VPOS/WIDTH/HEIGHT, no polygon)

    @property
    def region_id(self) -> str:
        """The block (ALTO TextBlock, PAGE TextRegion) holding the line."""
        return self.block_id

    def outline(self) -> Points:
        """The line's polygon, else its own box as four corners, else ()."""
        if self.polygon or not self.box_given:
            return self.polygon
        x, y, w, h = self.box
        return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


@dataclass(frozen=True)
class TextBlock:
    """One block (ALTO TextBlock, PAGE TextRegion)."""

    id: str
    box: WBox
    polygon: Points = ()


@dataclass(frozen=True)
class Tag:
    """One ALTO tag (NamedEntityTag, OtherTag, ...)."""

    id: str
    kind: str
    type: str
    label: str
    description: str


@dataclass(frozen=True)
class Page:
    """One ALTO or PAGE file, read.

    `image_path` is where the page's image is (set by `alto.gt.read_gt`, which resolves it), else
    the bare `file_name` beside the XML.
    """

    xml_path: Path
    format: str  # "alto" or "page"
    width: int
    height: int
    lines: tuple[TextLine, ...] = ()
    blocks: tuple[TextBlock, ...] = ()  # in reading order
    tags: tuple[Tag, ...] = ()
    file_name: str = ""  # ALTO sourceImageInformation/fileName, PAGE Page/@imageFilename
    image_path: Path | None = None

    def tag_map(self) -> dict[str, Tag]:
        """The tags by id."""
        return {t.id: t for t in self.tags}

    @property
    def document(self) -> str:
        """Folder that identifies the document (the XML's folder, or its parent for alto/ & page/ subfolders)."""
        folder = self.xml_path.parent
        if folder.name in ("alto", "page", "xml"):
            folder = folder.parent
        return str(folder)
