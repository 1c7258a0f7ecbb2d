"""Frozen records passed between pipeline stages.

Coordinates are always absolute pixels of the ORIGINAL page image.
Boxes are `(x0, y0, x1, y1)` with x1/y1 exclusive (ALTO WIDTH = x1 - x0).
Every record round-trips through `to_dict` / `from_dict` (plain JSON types).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.geometry import Box, Point, bbox_of  # also the names stage code takes from here

# A double page split by preprocessing gives two output pages, `<id>-L` and `<id>-R` (left, right).
PART_SUFFIXES = ("-L", "-R")


def _pts(value: Any) -> tuple[Point, ...]:
    return tuple((int(x), int(y)) for x, y in value or ())


def part_ids(page_id: str) -> tuple[str, ...]:
    """Every output id a page can have: itself, and its two parts when split."""
    return (page_id, *(page_id + s for s in PART_SUFFIXES))


def split_part(stem: str) -> tuple[str, str]:
    """(page id, part suffix) of an output id: `("p1", "-L")` for "p1-L", `("p1", "")` for "p1"."""
    for s in PART_SUFFIXES:
        if stem.endswith(s):
            return stem[: -len(s)], s
    return stem, ""


@dataclass(frozen=True)
class PageRef:
    """One page of the collection: where it comes from and its content hash.

    `index` is the page number inside a multi-page file (PDF, TIFF), 0 otherwise;
    `sha256` hashes the source file's bytes (plus the index for multi-page files).
    """

    id: str
    source: str
    index: int = 0
    sha256: str = ""
    n_pages: int = 1
    segmentation: str = ""  # existing ALTO/PAGE whose lines are re-read (--segmentation-from)
    segmentation_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageRef:
        return cls(**d)


@dataclass(frozen=True)
class PageImage:
    """A page ready for processing: a normalised image file on disk (8-bit L or RGB)."""

    ref: PageRef
    path: str
    width: int
    height: int
    dpi: int | None = None
    mode: str = "RGB"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageImage:
        return cls(**{**d, "ref": PageRef.from_dict(d["ref"])})


@dataclass(frozen=True)
class Region:
    """A text region (block) with its polygon and SegmOnto-like type."""

    id: str
    polygon: tuple[Point, ...]
    type: str = "text"

    @property
    def box(self) -> Box:
        return bbox_of(self.polygon)


@dataclass(frozen=True)
class Line:
    """A text line: baseline, boundary polygon and the region it belongs to (if any)."""

    id: str
    baseline: tuple[Point, ...]
    polygon: tuple[Point, ...]
    region_id: str | None = None
    type: str = "default"

    @property
    def box(self) -> Box:
        return bbox_of(self.polygon or self.baseline)


@dataclass(frozen=True)
class PageSegmentation:
    """Layout of one page; `lines` are in reading order."""

    width: int
    height: int
    regions: tuple[Region, ...] = ()
    lines: tuple[Line, ...] = ()
    text_direction: str = "horizontal-lr"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageSegmentation:
        return cls(
            width=d["width"],
            height=d["height"],
            regions=tuple(Region(r["id"], _pts(r["polygon"]), r.get("type", "text")) for r in d.get("regions", ())),
            lines=tuple(
                Line(
                    ln["id"], _pts(ln["baseline"]), _pts(ln["polygon"]), ln.get("region_id"), ln.get("type", "default")
                )
                for ln in d.get("lines", ())
            ),
            text_direction=d.get("text_direction", "horizontal-lr"),
        )


@dataclass(frozen=True)
class Word:
    """A recognised word: text, box from the character cuts, mean character confidence (0..1)."""

    text: str
    box: Box
    confidence: float


@dataclass(frozen=True)
class LineText:
    """Recognised text of one line."""

    line_id: str
    text: str
    confidence: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class PageText:
    """Recognised text of one page, lines in reading order (same ids as the segmentation)."""

    lines: tuple[LineText, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)

    @property
    def mean_confidence(self) -> float | None:
        confs = [w.confidence for ln in self.lines for w in ln.words]
        return sum(confs) / len(confs) if confs else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageText:
        return cls(
            tuple(
                LineText(
                    ln["line_id"],
                    ln["text"],
                    ln["confidence"],
                    tuple(Word(w["text"], tuple(w["box"]), w["confidence"]) for w in ln.get("words", ())),
                )
                for ln in d.get("lines", ())
            )
        )


@dataclass(frozen=True)
class ProcessingStep:
    """One ALTO `Processing` entry: what ran, in which version, with which settings."""

    category: str  # ALTO processingCategory: preOperation | contentGeneration | postOperation | other
    description: str
    software: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)
    date: str = ""  # ISO 8601

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PageResult:
    """What happened to one page in a run (one entry of run.json)."""

    page_id: str
    source: str
    index: int
    sha256: str
    status: str  # done | skipped | failed | pending (not processed: the run stopped first)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    lines: int = 0
    mean_confidence: float | None = None
    key: str = ""
    worker: str = ""
    parts: tuple[str, ...] = ()  # output page ids when the page was split (`<id>-L`, `<id>-R`)
    preprocess: dict[str, Any] | None = None  # measured turn, skew, crop box, gutter
    fault: str | None = None  # "disk-full": the output disk was full (the run stops taking pages)

    @property
    def output_ids(self) -> tuple[str, ...]:
        """The page ids this result wrote ALTO for."""
        return self.parts or (self.page_id,)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PageResult:
        return cls(**{**d, "parts": tuple(d.get("parts") or ())})
