"""Kraken line recognition: the only module that runs Kraken's text recognition.

Kraken records stop here: `run` returns a frozen `PageText` with word boxes
taken from Kraken's character cuts.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import lru_cache

from PIL import Image

from core.geometry import clamp, intersect_box
from htr import segment
from htr.config import RecognizeSettings
from htr.errors import ModelError, RecognitionError
from htr.models import ModelInfo
from htr.types import Box, LineText, PageSegmentation, PageText, Word, bbox_of

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from kraken.tasks import RecognitionTaskModel

    try:
        return RecognitionTaskModel.load_model(path)
    except Exception as e:  # kraken raises many types on bad files
        raise ModelError(f"cannot load recognition model: {type(e).__name__}: {e}", path=path) from e


def load(model: ModelInfo, device: str = "cpu"):
    """Load (once per process) a recognition model."""
    return _load(model.path, device)


def words_of(record, line_box: Box) -> tuple[Word, ...]:
    """Split a kraken OCR record at whitespace into words with boxes from the character cuts."""
    text = record.prediction
    words: list[Word] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        _, cut, conf = record[i:j]
        pts = tuple((int(round(x)), int(round(y))) for x, y in cut)
        box = intersect_box(bbox_of(pts), line_box) if pts else line_box
        words.append(Word(text[i:j], box, float(clamp(conf, 0.0, 1.0))))
        i = j
    return tuple(words)


def run(
    image: Image.Image,
    seg: PageSegmentation,
    model: ModelInfo,
    settings: RecognizeSettings,
    device: str = "cpu",
    page_id: str | None = None,
) -> PageText:
    """Read every line of `seg` on `image`; lines keep the segmentation's ids and order."""
    from kraken.configs import RecognitionInferenceConfig

    net = load(model, device)
    accelerator, devices = segment.fabric_device(device)
    config = RecognitionInferenceConfig(
        accelerator=accelerator,
        device=devices,
        batch_size=settings.batch_size,
        padding=settings.padding,
        num_line_workers=0,  # pages are parallel already; no extra process pool per worker
    )
    kseg = segment.to_kraken(seg)
    by_id = {ln.id: ln for ln in seg.lines}
    results: dict[str, LineText] = {}
    try:
        for record in net.predict(image, kseg, config):
            line = by_id.get(record.id)
            if line is None:
                continue
            confs = list(record.confidences)
            conf = float(sum(confs) / len(confs)) if confs else 0.0
            results[line.id] = LineText(
                line.id, record.prediction, conf, words_of(record, line.box) if record.prediction else ()
            )
    except Exception as e:  # kraken/torch raise many types: the page fails with RecognitionError
        raise RecognitionError(f"kraken recognition failed: {type(e).__name__}: {e}", page_id=page_id) from e
    return PageText(tuple(results.get(ln.id, LineText(ln.id, "", 0.0, ())) for ln in seg.lines))


def line_images(image: Image.Image, seg: PageSegmentation, height: int) -> list[tuple[str, Image.Image | None]]:
    """The line crops recognition sees (Kraken's polygon extraction, RGB, scaled to `height`), for training.

    A line Kraken cannot extract (polygon outside the page, degenerate) comes back as None.
    """
    from kraken.lib.functional_im_transforms import pil_fixed_resize
    from kraken.lib.segmentation import extract_polygons

    out: list[tuple[str, Image.Image | None]] = []
    kseg = segment.to_kraken(seg)
    for kline in kseg.lines:
        one = dataclasses.replace(kseg, lines=[kline])
        try:
            crop, _ = next(extract_polygons(image, one))
        except (ValueError, StopIteration):
            out.append((kline.id, None))
            continue
        if 0 in crop.size:
            out.append((kline.id, None))
            continue
        out.append((kline.id, pil_fixed_resize(crop.convert("RGB"), (height, 0))))
    return out
