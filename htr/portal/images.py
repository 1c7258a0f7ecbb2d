"""Page images for the web: one size-capped JPEG per page, OUT/images/<page-id>.jpg.

Drawn from the page's source exactly as `htr enrich` read it (EXIF orientation, PDF pages at the
run's DPI, multi-page TIFF pages, 16-bit, CMYK...: `htr.images.load`), then scaled so that its
longer side is at most `max_side` pixels. The ALTO page size is the canvas: the derivative has the
same aspect ratio, so a box (x, y, w, h) of the ALTO is (x, y, w, h) * derivative width / page width.
A derivative is redrawn when it is missing, older than the page's ALTO, or of another size.
"""

from __future__ import annotations

import tempfile
from io import BytesIO
from pathlib import Path

from PIL import Image

from htr import atomic
from htr.errors import ExportError, HTRError
from htr.images import load, open_image
from htr.portal import MAX_SIDE
from htr.portal.documents import PageEntry
from htr.types import PageRef

__all__ = ["MAX_SIDE", "derivative_size", "ensure_image", "image_path"]
JPEG_QUALITY = 85
ASPECT_TOLERANCE = 0.01


def derivative_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """Size of the derivative of a `width` x `height` page (never larger than the page)."""
    if width < 1 or height < 1 or max_side < 1:
        raise ExportError(f"cannot scale a {width}x{height} page to {max_side} pixels")
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def image_path(out: str | Path, page_id: str) -> Path:
    return Path(out) / "images" / f"{page_id}.jpg"


def _fresh(dest: Path, alto: Path, size: tuple[int, int]) -> bool:
    try:
        if dest.stat().st_mtime_ns < alto.stat().st_mtime_ns:
            return False
        with Image.open(dest) as im:
            return im.size == size
    except (OSError, ValueError):
        return False


def ensure_image(
    out: str | Path, page: PageEntry, width: int, height: int, max_side: int = MAX_SIDE, pdf_dpi: int = 300
) -> Path | None:
    """OUT/images/<page>.jpg for a page whose ALTO is `width` x `height`, drawn if needed.

    None when the page has no known source or its source file is gone; ExportError (naming the
    source) when the source cannot be read or no longer has the ALTO page's shape.
    """
    size = derivative_size(width, height, max_side)
    dest = image_path(out, page.id)
    if _fresh(dest, page.alto, size):
        return dest
    if not page.source or not Path(page.source).is_file():
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="htr-img-") as work:
            loaded = load(PageRef(page.id, page.source, page.index), Path(work), pdf_dpi)
            with open_image(loaded) as im:
                if abs(im.width / im.height - width / height) > ASPECT_TOLERANCE * (width / height):
                    raise ExportError(
                        f"image is {im.width}x{im.height} but its ALTO page is {width}x{height} "
                        "(source changed since htr enrich?)",
                        path=page.source,
                    )
                small = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    except HTRError as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"cannot draw page image: {exc.message}", path=page.source) from exc
    buf = BytesIO()
    small.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    try:
        atomic.write_bytes(dest, buf.getvalue())
    except OSError as exc:
        raise ExportError(f"cannot write page image: {exc.strerror or exc}", path=str(dest)) from exc
    return dest
