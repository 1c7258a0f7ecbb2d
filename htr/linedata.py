"""Line datasets for recognition training: ground-truth lines cut exactly as recognition cuts them.

A `LineSet` is a list of line images (RGB, fixed height, no padding) with their text and where they
came from. It is saved as one compact `.npz` (each line PNG- or JPEG-encoded), small enough to carry
to a GPU machine, and loads without Kraken (`load`) so that the fine-tuning loop can run where only
torch, numpy and Pillow are installed.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

FORMAT = "htr-lineset/1"


@dataclass(frozen=True)
class LineSample:
    """One training line: its text and its origin (document folder, page XML, line id)."""

    text: str
    document: str
    page: str
    line_id: str


@dataclass(frozen=True)
class LineSet:
    """Line images (uint8 H×W×3, all of one height) and their samples, index-aligned."""

    height: int
    samples: tuple[LineSample, ...]
    images: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, keep: Sequence[int]) -> LineSet:
        return LineSet(self.height, tuple(self.samples[i] for i in keep), tuple(self.images[i] for i in keep))

    def documents(self) -> list[str]:
        return sorted({s.document for s in self.samples})

    def split(self, validation_documents: Iterable[str]) -> tuple[LineSet, LineSet]:
        """(train, validation) by document: a document ends with one of `validation_documents`."""
        val_docs = tuple(validation_documents)
        is_val = [any(s.document.endswith(v) for v in val_docs) for s in self.samples]
        return (
            self.subset([i for i, v in enumerate(is_val) if not v]),
            self.subset([i for i, v in enumerate(is_val) if v]),
        )

    def charset(self) -> str:
        return "".join(sorted({c for s in self.samples for c in s.text}))


def from_pages(pages, height: int, progress=None) -> tuple[LineSet, int]:
    """Cut the usable lines of ground-truth pages as recognition sees them; returns (set, lines dropped)."""
    from alto.gt import is_placeholder_line
    from core.geometry import clamp_points
    from htr.evaluate import has_geometry, open_page_image
    from htr.recognize import line_images
    from htr.types import Line, PageSegmentation

    samples: list[LineSample] = []
    images: list[np.ndarray] = []
    dropped = 0
    for page in pages:
        if progress:
            progress(str(page.xml_path))
        used = [ln for ln in page.lines if ln.text and not is_placeholder_line(ln.text) and has_geometry(ln)]
        dropped += len(page.lines) - len(used)
        if not used:
            continue
        im = open_page_image(page)
        w, h = im.width, im.height
        seg = PageSegmentation(
            w,
            h,
            lines=tuple(
                Line(f"l{k}", clamp_points(ln.baseline, w, h), clamp_points(ln.polygon, w, h))
                for k, ln in enumerate(used)
            ),
        )
        for ln, (_, crop) in zip(used, line_images(im, seg, height)):
            if crop is None or crop.width < 4:
                dropped += 1
                continue
            samples.append(LineSample(ln.text, page.document, str(page.xml_path), ln.id))
            images.append(np.asarray(crop, dtype=np.uint8))
    return LineSet(height, tuple(samples), tuple(images)), dropped


def save(lines: LineSet, path: Path, encoding: str = "png", quality: int = 90) -> Path:
    """Write a LineSet as one `.npz`: encoded lines back to back, offsets, and a JSON header."""
    blobs = []
    for arr in lines.images:
        buf = io.BytesIO()
        im = Image.fromarray(arr)
        if encoding == "jpeg":
            im.save(buf, format="JPEG", quality=quality, subsampling=0)
        elif encoding == "png":
            im.save(buf, format="PNG", optimize=False, compress_level=6)
        else:
            raise ValueError(f"encoding must be png or jpeg, not {encoding!r}")
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    header = {
        "format": FORMAT,
        "height": lines.height,
        "encoding": encoding,
        "samples": [asdict(s) for s in lines.samples],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(
        tmp,
        data=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
        offsets=offsets,
        header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8),
    )
    tmp.replace(path)
    return path


def load(path: Path) -> LineSet:
    """Read a LineSet written by `save` (needs numpy and Pillow only)."""
    with np.load(path) as z:
        header = json.loads(z["header"].tobytes().decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a line set ({header.get('format')!r})")
        data, offsets = z["data"], z["offsets"]
    images = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        with Image.open(io.BytesIO(data[a:b].tobytes())) as im:
            images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    samples = tuple(LineSample(**s) for s in header["samples"])
    return LineSet(int(header["height"]), samples, tuple(images))
