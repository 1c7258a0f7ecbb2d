"""IIIF Presentation 3.0 for a document, built with iiif-prezi3 (URL layout: htr.portal.urls).

- Manifest: one Canvas per page in page order, sized as the ALTO page (original scan pixels);
  its `service` is the collection's IIIF Content Search 2.0 endpoint (`SearchService2`).
- Canvas: a `painting` annotation with the page image (JPEG derivative, its own pixel size) when
  there is one; the ALTO as `seeAlso` (profile ALTO 4.4 schema); `annotations` = the page's lines
  (embedded AnnotationPage) and a reference to the page's word AnnotationPage.
- Text annotations: W3C Web Annotations, motivation `supplementing`, a `TextualBody`
  (text/plain) and a target `{canvas}#xywh=x,y,w,h` (ALTO box of the line or String).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from alto.model import Page, WBox
from htr.errors import ExportError
from htr.portal.documents import Document, PageEntry
from htr.portal.urls import Urls

ALTO_PROFILE = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
SEARCH_TYPE = "SearchService2"


@dataclass(frozen=True)
class CanvasPage:
    """What a canvas needs: the page, its ALTO read, and its image's pixel size (None: no image)."""

    entry: PageEntry
    alto: Page
    image_size: tuple[int, int] | None


def _prezi() -> Any:
    try:
        import iiif_prezi3
    except ImportError as exc:
        raise ExportError(
            "iiif-prezi3 is not installed: run `make install` (pyproject.toml [tool.htr] says why "
            "it is installed without its dependencies)"
        ) from exc
    return iiif_prezi3


def _label(text: str) -> dict[str, list[str]]:
    return {"none": [text]}


def _dict(obj: Any) -> dict[str, Any]:
    return json.loads(obj.jsonld())


def _xywh(box: WBox) -> str:
    x, y, w, h = box
    return f"{x},{y},{w},{h}"


def _annotation(p: Any, aid: str, text: str, target: str) -> Any:
    return p.Annotation(
        id=aid, motivation="supplementing", target=target, body=p.TextualBody(value=text, format="text/plain")
    )


def _line_page(p: Any, urls: Urls, doc: str, page: CanvasPage) -> Any:
    pid = page.entry.id
    base = urls.lines(doc, pid)[: -len(".json")]
    items = [
        _annotation(p, f"{base}/{quote(ln.id, safe='')}", ln.text, f"{urls.canvas(pid)}#xywh={_xywh(ln.box)}")
        for ln in page.alto.lines
    ]
    return p.AnnotationPage(id=urls.lines(doc, pid), label=_label(f"{pid}: lines"), items=items)


def _word_page(p: Any, urls: Urls, doc: str, page: CanvasPage) -> Any:
    pid = page.entry.id
    base = urls.words(doc, pid)[: -len(".json")]
    words = [w for ln in page.alto.lines for w in ln.words]
    items = [
        _annotation(
            p, f"{base}/{quote(w.string_id or f'w{n}', safe='')}", w.content, f"{urls.canvas(pid)}#xywh={_xywh(w.box)}"
        )
        for n, w in enumerate(words, 1)
    ]
    return p.AnnotationPage(id=urls.words(doc, pid), label=_label(f"{pid}: words"), items=items)


def line_annotations(urls: Urls, doc: str, page: CanvasPage) -> dict[str, Any]:
    """The AnnotationPage of a page's lines (as embedded in the manifest), as JSON."""
    return _dict(_line_page(_prezi(), urls, doc, page))


def word_annotations(urls: Urls, doc: str, page: CanvasPage) -> dict[str, Any]:
    """The AnnotationPage of a page's words (ALTO Strings), as JSON."""
    return _dict(_word_page(_prezi(), urls, doc, page))


def manifest(urls: Urls, doc: Document, pages: Sequence[CanvasPage], search: bool = True) -> dict[str, Any]:
    """The manifest of `doc` as JSON; `pages` in page order. `search`: name the Content Search service."""
    p = _prezi()
    m = p.Manifest(id=urls.manifest(doc.id), label=_label(doc.label or doc.id))
    m.metadata = [p.KeyValueString(label=_label("pages"), value=_label(str(len(pages))))]
    canvases = []
    for page in pages:
        pid = page.entry.id
        c = p.Canvas(
            id=urls.canvas(pid), label=_label(pid), width=max(1, page.alto.width), height=max(1, page.alto.height)
        )
        if page.image_size:
            w, h = page.image_size
            c.add_image(
                urls.image(pid),
                anno_id=f"{urls.canvas(pid)}/painting/image",
                anno_page_id=f"{urls.canvas(pid)}/painting",
                format="image/jpeg",
                width=w,
                height=h,
            )
        else:
            c.items = [p.AnnotationPage(id=f"{urls.canvas(pid)}/painting", items=[])]
        c.seeAlso = [
            p.LinkedResource(
                id=urls.alto(pid),
                type="Dataset",
                format="application/xml",
                profile=ALTO_PROFILE,
                label=_label("ALTO 4.4"),
            )
        ]
        c.annotations = [
            _line_page(p, urls, doc.id, page),
            p.AnnotationPageRefExtended(
                id=urls.words(doc.id, pid), type="AnnotationPage", label=_label(f"{pid}: words")
            ),
        ]
        canvases.append(c)
    m.items = canvases  # at once: add_item re-validates the whole list each time
    if search:
        m.service = [p.ServiceV3(id=urls.search(), type=SEARCH_TYPE)]
    return _dict(m)


def collection(urls: Urls, docs: Sequence[Document]) -> dict[str, Any]:
    """A IIIF Collection listing every document's manifest."""
    p = _prezi()
    c = p.Collection(id=urls.collection(), label=_label("HTR collection"))
    c.items = [p.ManifestRef(id=urls.manifest(d.id), type="Manifest", label=_label(d.label or d.id)) for d in docs]
    return _dict(c)
