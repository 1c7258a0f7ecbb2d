"""IIIF Content Search API 2.0 over the index: `GET /search?q=...` (Starlette, served by uvicorn).

Response: an `AnnotationPage` (`@context` http://iiif.io/api/search/2/context.json) whose `items`
are one `Annotation` per matched word: motivation `highlighting`, a `TextualBody` with the word,
and `target` = `{base}/canvas/{page_id}#xywh=x,y,w,h` in the page image's pixels. `annotations`
holds one `highlighting` annotation per hit with a `TextQuoteSelector` (prefix/exact/suffix of the
line) pointing at its word annotations. More than `page_size` annotations: the page is `partOf`
an `AnnotationCollection`, with `next`/`prev` pages (`&page=N`, 0-based) and `startIndex`.
Parameters other than `q` and `page` (`motivation`, `date`, `user`, ...) are not implemented and
are listed in `ignored`. A malformed query is a 400 with a JSON `error`, never a traceback.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from htr.index.errors import IndexStoreError, QueryError
from htr.index.store import Hit, Index

SEARCH_CONTEXT = "http://iiif.io/api/search/2/context.json"
MEDIA_TYPE = 'application/ld+json;profile="http://iiif.io/api/search/2/context.json"'
HANDLED = ("q", "page")


class _Indexes:
    """One read-only connection per server thread."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()

    def get(self) -> Index:
        idx = getattr(self.local, "idx", None)
        if idx is None:
            idx = self.local.idx = Index.open(self.path, readonly=True)
        return idx


def _annotations(hits: list[Hit], base: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    matches: list[dict[str, Any]] = []
    seen: set[str] = set()
    for hit in hits:
        ids = []
        for b in hit.boxes:
            aid = f"{base}/annotation/{quote(hit.page_id, safe='')}/{quote(b.line_id, safe='')}/{b.xywh}"
            ids.append(aid)
            if aid in seen:
                continue
            seen.add(aid)
            items.append(
                {
                    "id": aid,
                    "type": "Annotation",
                    "motivation": "highlighting",
                    "body": {"type": "TextualBody", "value": b.text, "format": "text/plain"},
                    "target": f"{base}/canvas/{quote(hit.page_id, safe='')}#xywh={b.xywh}",
                }
            )
        targets = [
            {
                "type": "SpecificResource",
                "source": aid,
                "selector": [
                    {"type": "TextQuoteSelector", "prefix": hit.before, "exact": hit.matched, "suffix": hit.after}
                ],
            }
            for aid in ids[:1]
        ] + [{"type": "SpecificResource", "source": aid} for aid in ids[1:]]
        matches.append(
            {
                "id": f"{base}/match/{quote(hit.page_id, safe='')}/{quote(hit.line_id, safe='')}/{hit.rank}",
                "type": "Annotation",
                "motivation": "highlighting",
                "target": targets[0] if len(targets) == 1 else targets,
            }
        )
    return items, matches


def search_page(idx: Index, params: dict[str, str], base: str, page_size: int) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of one search request; `params` are the query parameters."""
    service = f"{base}/search"
    ignored = sorted(k for k in params if k not in HANDLED)
    q = params.get("q", "")

    def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"@context": SEARCH_CONTEXT, "type": "Error", "status": status, "error": message}

    if not q.strip():
        return error(400, 'missing q: give words, a "phrase" or a prefix*, e.g. /search?q=notai*')
    try:
        page = int(params.get("page", "0"))
        if page < 0:
            raise ValueError
    except ValueError:
        return error(400, f"page must be a number >= 0, not {params.get('page')!r}")
    try:
        hits = idx.search(q, limit=page_size + 1, offset=page * page_size)
    except QueryError as exc:
        return error(400, str(exc))
    more = len(hits) > page_size
    hits = hits[:page_size]

    def url(n: int | None) -> str:
        args = {"q": q}
        if n:
            args["page"] = str(n)
        return f"{service}?{urlencode(args)}"

    items, matches = _annotations(hits, base)
    body: dict[str, Any] = {"@context": SEARCH_CONTEXT, "id": url(page), "type": "AnnotationPage"}
    if more or page > 0:
        body["partOf"] = {
            "id": url(None),
            "type": "AnnotationCollection",
            "first": {"id": url(0), "type": "AnnotationPage"},
        }
        body["startIndex"] = page * page_size
        if more:
            body["next"] = {"id": url(page + 1), "type": "AnnotationPage"}
        if page > 0:
            body["prev"] = {"id": url(page - 1), "type": "AnnotationPage"}
    if ignored:
        body["ignored"] = ignored
    body["items"] = items
    if matches:
        body["annotations"] = [{"type": "AnnotationPage", "items": matches}]
    return 200, body


def search_routes(index: str | Path, base_url: str | None = None, page_size: int = 100) -> list[Any]:
    """Starlette routes `/search` (the service) and `/search/info` (its description) over `index`."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    indexes = _Indexes(Path(index))
    Index.open(index, readonly=True).close()  # fail now, with a clear message, if it is missing

    def base_of(request: Request) -> str:
        return (base_url or str(request.base_url)).rstrip("/")

    def respond(status: int, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE if status == 200 else "application/json")

    def search(request: Request) -> JSONResponse:
        params = {k: v for k, v in request.query_params.items()}
        try:
            status, body = search_page(indexes.get(), params, base_of(request), page_size)
        except IndexStoreError as exc:
            status, body = 503, {"type": "Error", "status": 503, "error": str(exc)}
        return respond(status, body)

    def service(request: Request) -> JSONResponse:
        base = base_of(request)
        return respond(200, {"@context": SEARCH_CONTEXT, "id": f"{base}/search", "type": "SearchService2"})

    return [Route("/search", search), Route("/search/info", service)]


def create_app(index: str | Path, base_url: str | None = None, page_size: int = 100) -> Any:
    """The Starlette application serving `/search` over the index file `index` (and its description at `/`)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    routes = search_routes(index, base_url, page_size)
    routes.append(Route("/", routes[-1].endpoint))  # the service description

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"type": "Error", "status": 500, "error": f"internal error: {type(exc).__name__}"}, status_code=500
        )

    return Starlette(
        routes=routes,
        middleware=[Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"])],
        exception_handlers={Exception: server_error},
    )


def serve(
    index: str | Path, host: str = "127.0.0.1", port: int = 8080, base_url: str | None = None, page_size: int = 100
) -> None:
    """Run the search service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(index, base_url, page_size), host=host, port=port, log_level="info")
