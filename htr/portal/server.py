"""`htr serve`: a small read-only reading room over an output folder (Starlette, run by uvicorn).

Routes (GET/HEAD only; the URL layout of htr.portal.urls plus the viewer's own):
    /                              the documents, their pages, a search box
    /view/<page>                   the viewer: image (OpenSeadragon) beside the page's text
    /api/documents, /api/page/<page>   what those two pages show, as JSON
    /search?q=                     IIIF Content Search 2.0 (htr.index.iiif); /search/info describes it
    /iiif/collection.json, /iiif/<doc>/manifest.json, /iiif/<doc>/{lines,words}/<page>.json
    /images/<page>.jpg             page image, drawn on first request (htr.portal.images)
    /alto/<page>.xml, /text/<page>.txt, /thumbs/<page>.jpg, /report.html   files of OUT
    /static/<file>                 the viewer's own files (htr/portal/static)

Nothing is served by joining a requested path to a folder: every file is found by looking up a
page id, document id or static file name in tables built from OUT, so no request can reach a file
outside OUT (or any file of OUT that is not listed above). Manifests are built for the URL the
request came in on (or `base_url`), so they work on any host and port.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alto.model import Page
from alto.reader import read_alto
from htr.errors import ExportError, HTRError
from htr.portal.documents import Collection, PageEntry, collect
from htr.portal.images import MAX_SIDE, derivative_size, ensure_image, image_path
from htr.portal.manifest import CanvasPage, collection, line_annotations, manifest, word_annotations
from htr.portal.urls import Urls
from htr.portal.viewdata import document_json, page_json

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOW_CONFIDENCE = 0.5
_MEDIA = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".txt": "text/plain",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}
IIIF_MEDIA = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'


def static_files() -> dict[str, Path]:
    """Every file under htr/portal/static, by its path relative to it (posix)."""
    return {
        p.relative_to(STATIC_DIR).as_posix(): p
        for p in sorted(STATIC_DIR.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


class _Catalog:
    """The documents of OUT, re-read when run.json or the alto/ folder changes; ALTO reads cached."""

    def __init__(self, out: Path):
        self.out = out
        self.lock = threading.Lock()
        self.stamp: tuple[int, int] | None = None
        self.coll: Collection | None = None
        self.altos: dict[tuple[str, int], Page] = {}
        self.image_locks: dict[str, threading.Lock] = {}

    def _stamp(self) -> tuple[int, int]:
        def mtime(p: Path) -> int:
            try:
                return p.stat().st_mtime_ns
            except OSError:
                return 0

        return (mtime(self.out / "run.json"), mtime(self.out / "alto"))

    def get(self) -> Collection:
        stamp = self._stamp()
        with self.lock:
            if self.coll is None or stamp != self.stamp:
                self.coll, self.stamp = collect(self.out), stamp
            return self.coll

    def alto(self, path: Path) -> Page:
        key = (str(path), path.stat().st_mtime_ns)
        page = self.altos.get(key)
        if page is None:
            page = read_alto(path)
            with self.lock:
                if len(self.altos) > 2000:
                    self.altos.clear()
                self.altos[key] = page
        return page

    def image_lock(self, page_id: str) -> threading.Lock:
        with self.lock:
            return self.image_locks.setdefault(page_id, threading.Lock())


def create_app(
    out: str | Path,
    base_url: str | None = None,
    page_size: int = 100,
    max_side: int = MAX_SIDE,
    low_confidence: float = LOW_CONFIDENCE,
) -> Any:
    """The reading room's Starlette application over output folder `out` (needs OUT/index.sqlite)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from htr.index.iiif import search_routes
    from htr.index.store import Index, index_path

    out = Path(out).resolve()
    if not (out / "alto").is_dir():
        raise ExportError("no alto/ folder here: not an output folder of htr enrich", path=str(out))
    catalog = _Catalog(out)
    catalog.get()  # fail now, with a clear message, on an unreadable run.json
    statics = static_files()
    ipath = index_path(out)

    def urls(request: Request) -> Urls:
        return Urls.at(base_url or str(request.base_url))

    def not_found(what: str) -> HTTPException:
        return HTTPException(404, f"no such {what}")

    def stem(name: str, ext: str) -> str:
        if not name.endswith(ext):
            raise not_found("file")
        return name[: -len(ext)]

    def entry_of(page_id: str) -> tuple[Collection, PageEntry]:
        coll = catalog.get()
        entry = coll.page(page_id)
        if entry is None:
            raise not_found("page")
        return coll, entry

    def alto_of(entry: PageEntry) -> Page:
        try:
            return catalog.alto(entry.alto)
        except OSError:  # removed since the catalogue was read
            raise not_found("page") from None

    def canvas_page(entry: PageEntry) -> CanvasPage:
        alto = alto_of(entry)
        has_image = (
            alto.width > 0
            and alto.height > 0
            and (bool(entry.source) and Path(entry.source).is_file() or image_path(out, entry.id).is_file())
        )
        return CanvasPage(entry, alto, derivative_size(alto.width, alto.height, max_side) if has_image else None)

    def iiif(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, media_type=IIIF_MEDIA)

    def static(name: str) -> Response:
        path = statics.get(name)
        if path is None:
            raise not_found("file")
        return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))

    async def home(request: Request) -> Response:
        return static("index.html")

    def view(request: Request) -> Response:
        entry_of(request.path_params["page"])
        return static("viewer.html")

    async def static_file(request: Request) -> Response:
        return static(request.path_params["name"])

    def api_documents(request: Request) -> JSONResponse:
        return JSONResponse(
            {"documents": [document_json(d) for d in catalog.get().documents], "collection": "/iiif/collection.json"}
        )

    def api_page(request: Request) -> JSONResponse:
        pid = request.path_params["page"]
        coll, entry = entry_of(pid)
        doc = coll.document_of(pid)
        if doc is None:  # the catalogue lists every page under its document: not seen
            raise not_found("page")
        cp = canvas_page(entry)
        entities: list[dict[str, Any]] = []
        if ipath.is_file():
            with Index.open(ipath, readonly=True) as idx:
                entities = idx.page_entities(pid)
        position = next(n for n, p in enumerate(doc.pages) if p.id == pid)
        return JSONResponse(page_json(doc, position, cp.alto, cp.image_size, entities, low_confidence))

    def image(request: Request) -> Response:
        pid = stem(request.path_params["name"], ".jpg")
        coll, entry = entry_of(pid)
        alto = alto_of(entry)
        if alto.width < 1 or alto.height < 1:
            raise not_found("image")
        with catalog.image_lock(pid):
            path = ensure_image(out, entry, alto.width, alto.height, max_side, coll.pdf_dpi)
        if path is None:
            raise not_found("image")
        return FileResponse(path, media_type="image/jpeg")

    def alto_file(request: Request) -> Response:
        _, entry = entry_of(stem(request.path_params["name"], ".xml"))
        return FileResponse(entry.alto, media_type="application/xml")

    def out_file(folder: str, ext: str, media: str) -> Any:
        def endpoint(request: Request) -> Response:
            _, entry = entry_of(stem(request.path_params["name"], ext))
            path = out / folder / f"{entry.id}{ext}"
            if not path.is_file():
                raise not_found("file")
            return FileResponse(path, media_type=media)

        return endpoint

    def report(request: Request) -> Response:
        path = out / "report.html"
        if not path.is_file():
            raise not_found("report")
        return FileResponse(path, media_type="text/html")

    def iiif_collection(request: Request) -> JSONResponse:
        return iiif(collection(urls(request), catalog.get().documents))

    def iiif_manifest(request: Request) -> JSONResponse:
        coll = catalog.get()
        doc = coll.document(request.path_params["doc"])
        if doc is None:
            raise not_found("document")
        return iiif(manifest(urls(request), doc, [canvas_page(e) for e in doc.pages], search=ipath.is_file()))

    def iiif_annotations(request: Request) -> JSONResponse:
        coll = catalog.get()
        doc = coll.document(request.path_params["doc"])
        pid = stem(request.path_params["name"], ".json")
        entry = coll.page(pid)
        kind = request.path_params["kind"]
        if doc is None or entry is None or coll.document_of(pid) is not doc or kind not in ("lines", "words"):
            raise not_found("annotation page")
        build = line_annotations if kind == "lines" else word_annotations
        return iiif(build(urls(request), doc.id, canvas_page(entry)))

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code)

    async def htr_error(request: Request, exc: HTRError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "status": 500}, status_code=500)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}", "status": 500}, status_code=500)

    routes = [
        Route("/", home),
        Route("/index.html", lambda r: RedirectResponse("/")),
        Route("/favicon.ico", lambda r: Response(status_code=204)),
        Route("/view/{page}", view),
        Route("/static/{name:path}", static_file),
        Route("/api/documents", api_documents),
        Route("/api/page/{page}", api_page),
        Route("/images/{name}", image),
        Route("/alto/{name}", alto_file),
        Route("/text/{name}", out_file("text", ".txt", "text/plain; charset=utf-8")),
        Route("/thumbs/{name}", out_file("thumbs", ".jpg", "image/jpeg")),
        Route("/report.html", report),
        Route("/iiif/collection.json", iiif_collection),
        Route("/iiif/{doc}/manifest.json", iiif_manifest),
        Route("/iiif/{doc}/{kind:str}/{name}", iiif_annotations),
    ]
    if ipath.is_file():
        routes += search_routes(ipath, base_url, page_size)

    async def headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"]),
            Middleware(BaseHTTPMiddleware, dispatch=headers),
        ],
        # Starlette passes each handler only its own exception class; its type wants (Request, Exception)
        exception_handlers={HTTPException: http_error, HTRError: htr_error, Exception: server_error},  # type: ignore[dict-item]
    )


def serve(
    out: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    base_url: str | None = None,
    page_size: int = 100,
    max_side: int = MAX_SIDE,
    low_confidence: float = LOW_CONFIDENCE,
) -> None:
    """Run the reading room until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(out, base_url, page_size, max_side, low_confidence), host=host, port=port, log_level="warning"
    )
