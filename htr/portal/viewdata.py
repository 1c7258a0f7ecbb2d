"""What the reading room's viewer shows of a page, as JSON (`GET /api/page/<page-id>`).

Boxes are `[x, y, width, height]` in the pixels of the ALTO page (the canvas); `image` is the URL
of the page image, whose size (`image_width` x `image_height`) has the same aspect ratio. Words
whose confidence (ALTO WC) is below `low_confidence` are flagged `low`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from alto.model import Page
from htr.portal.documents import Document


def _q(s: str) -> str:
    return quote(s, safe="")


def document_json(doc: Document) -> dict[str, Any]:
    """A document and its pages, for the reading room's list."""
    return {
        "id": doc.id,
        "label": doc.label or doc.id,
        "manifest": f"/iiif/{_q(doc.id)}/manifest.json",
        "pages": [{"id": p.id, "view": f"/view/{_q(p.id)}", "thumb": f"/thumbs/{_q(p.id)}.jpg"} for p in doc.pages],
    }


def page_json(
    doc: Document,
    position: int,
    alto: Page,
    image_size: tuple[int, int] | None,
    entities: list[dict[str, Any]],
    low_confidence: float,
) -> dict[str, Any]:
    """The viewer's data for page `doc.pages[position]`."""
    page = doc.pages[position]
    lines = []
    for ln in alto.lines:
        words = [
            {
                "id": w.string_id,
                "text": w.content,
                "box": list(w.box),
                "wc": w.wc,
                "low": w.wc is not None and w.wc < low_confidence,
            }
            for w in ln.words
        ]
        lines.append({"id": ln.id, "text": ln.text, "box": list(ln.box), "words": words})
    return {
        "id": page.id,
        "document": {"id": doc.id, "label": doc.label or doc.id, "manifest": f"/iiif/{_q(doc.id)}/manifest.json"},
        "position": position + 1,
        "count": len(doc.pages),
        "prev": doc.pages[position - 1].id if position > 0 else None,
        "next": doc.pages[position + 1].id if position + 1 < len(doc.pages) else None,
        "width": alto.width,
        "height": alto.height,
        "image": f"/images/{_q(page.id)}.jpg" if image_size else None,
        "image_width": image_size[0] if image_size else None,
        "image_height": image_size[1] if image_size else None,
        "alto": f"/alto/{_q(page.id)}.xml",
        "low_confidence": low_confidence,
        "lines": lines,
        "entities": entities,
    }
