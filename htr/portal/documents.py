"""Which pages of OUT form which document, in page order.

A document is what a portal shows as one object: a multi-page file (PDF, multi-page TIFF), or a
folder of single-page images. Pages come from OUT/alto/*.xml; OUT/run.json (written by `htr enrich`)
says where each page's image came from and the page order (discovery order: natural sort by path,
then page number; a split double page gives its `-L` then its `-R` part). Pages with ALTO but no
run.json entry (ALTO made elsewhere, then `htr index`) form one last document without images.

Document ids are safe file names (like page ids): the path of the folder or file relative to the
folder all documents share, e.g. `registre_1850` or `scans_lettres` (`-2`, `-3`... on a clash).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from htr.errors import ExportError
from htr.images import page_id_for
from htr.index.store import alto_files

RUN_JSON = "run.json"


@dataclass(frozen=True)
class PageEntry:
    """One page (one ALTO file) of a document."""

    id: str
    alto: Path
    source: str = ""  # the image (or PDF/TIFF) it was read from; "" when unknown
    index: int = 0  # page number inside a multi-page source, 0-based


@dataclass(frozen=True)
class Document:
    """Pages shown together: one multi-page file or one folder of images."""

    id: str
    label: str
    source: str  # the folder or file; "" for pages of unknown origin
    pages: tuple[PageEntry, ...]


@dataclass(frozen=True)
class Collection:
    """Every document of an output folder, and the settings needed to redraw its page images."""

    out: Path
    documents: tuple[Document, ...]
    pdf_dpi: int = 300

    @cached_property
    def _pages(self) -> dict[str, tuple[Document, int]]:
        return {p.id: (d, n) for d in self.documents for n, p in enumerate(d.pages)}

    def page(self, page_id: str) -> PageEntry | None:
        """The page with this id, None when OUT has no such page."""
        hit = self._pages.get(page_id)
        return hit[0].pages[hit[1]] if hit else None

    def document_of(self, page_id: str) -> Document | None:
        hit = self._pages.get(page_id)
        return hit[0] if hit else None

    def document(self, doc_id: str) -> Document | None:
        return next((d for d in self.documents if d.id == doc_id), None)


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", text)]


def _run(out: Path) -> dict:
    path = out / RUN_JSON
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read run record: {exc}", path=str(path)) from exc
    if not isinstance(run, dict) or not isinstance(run.get("pages", []), list):
        raise ExportError("not a run record of htr enrich (no list of pages)", path=str(path))
    return run


def _entries(run: dict, altos: dict[str, Path]) -> list[PageEntry]:
    entries: list[PageEntry] = []
    seen: set[str] = set()
    for r in run.get("pages") or ():
        if not isinstance(r, dict) or r.get("status") not in ("done", "skipped"):
            continue
        index = r["index"] if isinstance(r.get("index"), int) else 0
        for pid in r.get("parts") or [r.get("page_id")]:
            if isinstance(pid, str) and pid in altos and pid not in seen:
                seen.add(pid)
                entries.append(PageEntry(pid, altos[pid], str(r.get("source") or ""), index))
    return entries


def _group_key(entry: PageEntry, multi: set[str]) -> tuple[str, str]:
    if not entry.source:
        return ("unknown", "")
    if entry.source in multi:
        return ("file", entry.source)
    return ("folder", os.path.dirname(entry.source))


def _ids(keys: Iterable[tuple[str, str]], fallback: str) -> dict[tuple[str, str], str]:
    keys = list(keys)
    paths = [p for kind, p in keys if kind != "unknown"]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    ids: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for kind, path in keys:
        if kind == "unknown":
            base = page_id_for(fallback)
        else:
            rel = os.path.relpath(path, root) if root else os.path.basename(path)
            base = page_id_for(os.path.basename(path) if rel in (".", "") else rel)
        cand, n = base, 1
        while cand.casefold() in used:
            n += 1
            cand = f"{base}-{n}"
        used.add(cand.casefold())
        ids[(kind, path)] = cand
    return ids


def collect(out: str | Path) -> Collection:
    """The documents of OUT (see the module docstring); raises ExportError for an unreadable run.json."""
    out = Path(out)
    altos = alto_files(out)
    run = _run(out)
    entries = _entries(run, altos)
    known = {e.id for e in entries}
    entries += [PageEntry(pid, altos[pid]) for pid in sorted(set(altos) - known, key=_natural)]

    per_source: dict[str, set[int]] = {}
    for e in entries:
        if e.source:
            per_source.setdefault(e.source, set()).add(e.index)
    multi = {src for src, idx in per_source.items() if len(idx) > 1 or max(idx) > 0}

    groups: dict[tuple[str, str], list[PageEntry]] = {}
    for e in entries:
        groups.setdefault(_group_key(e, multi), []).append(e)
    ids = _ids(groups, out.resolve().name or "pages")
    docs = []
    for key, pages in groups.items():
        kind, path = key
        label = os.path.basename(path) if path else "pages without a run record"
        docs.append(Document(ids[key], label, path, tuple(pages)))
    try:
        dpi = int(((run.get("settings") or {}).get("load") or {}).get("pdf_dpi") or 300)
    except (TypeError, ValueError):
        dpi = 300
    return Collection(out, tuple(docs), dpi)
