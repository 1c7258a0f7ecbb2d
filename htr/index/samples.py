"""Hand-made pages for tests and benchmarks: words with known boxes written as real ALTO by alto.writer."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from htr.types import Line, LineText, PageImage, PageRef, PageSegmentation, PageText, Region, Word

CHAR_W, LINE_H, GAP, LINE_STEP, X0, Y0 = 20, 40, 10, 60, 100, 100


def word_boxes(text: str, x0: int, y0: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Words of `text` with boxes: CHAR_W pixels per character, GAP between words, LINE_H high."""
    out, x = [], x0
    for w in text.split():
        box = (x, y0, x + CHAR_W * len(w), y0 + LINE_H)
        out.append((w, box))
        x = box[2] + GAP
    return out


def sample_page(
    page_id: str,
    texts: Sequence[str],
    width: int = 2000,
    height: int = 1500,
) -> tuple[PageImage, PageSegmentation, PageText]:
    """One page: line k (id `L{k+1}`) at y = Y0 + k*LINE_STEP, words as word_boxes() places them."""
    ref = PageRef(page_id, f"/data/{page_id}.jpg", 0, hashlib.sha256(page_id.encode()).hexdigest())
    page = PageImage(ref, f"/tmp/{page_id}.png", width, height)
    lines, texts_out = [], []
    for k, t in enumerate(texts):
        y = Y0 + k * LINE_STEP
        words = word_boxes(t, X0, y)
        x1 = max((b[2] for _, b in words), default=X0 + 10) + 5
        poly = ((X0 - 5, y - 5), (x1, y - 5), (x1, y + LINE_H + 5), (X0 - 5, y + LINE_H + 5))
        lid = f"L{k + 1}"
        lines.append(Line(lid, ((X0, y + LINE_H - 5), (x1, y + LINE_H - 5)), poly, "r1"))
        texts_out.append(LineText(lid, " ".join(w for w, _ in words), 0.9, tuple(Word(w, b, 0.9) for w, b in words)))
    region = Region(
        "r1", ((X0 - 10, Y0 - 10), (width - 10, Y0 - 10), (width - 10, height - 10), (X0 - 10, height - 10))
    )
    return page, PageSegmentation(width, height, (region,), tuple(lines)), PageText(tuple(texts_out))


def write_sample_alto(out: str | Path, page_id: str, texts: Sequence[str], entities: Sequence[Any] = ()) -> Path:
    """Write OUT/alto/<page_id>.xml for `texts` (entities: spans on line ids `L1`, `L2`...)."""
    from alto.writer import build_alto, write_alto

    page, seg, text = sample_page(page_id, texts)
    path = Path(out) / "alto" / f"{page_id}.xml"
    write_alto(path, build_alto(page, seg, text, entities=entities))
    return path
