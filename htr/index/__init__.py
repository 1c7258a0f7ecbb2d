"""Automatic indexing of a collection's ALTO: full-text search (SQLite FTS5, OUT/index.sqlite),
named entities (spaCy + French date rules, written into ALTO as NamedEntityTag), exports and a
IIIF Content Search 2.0 service.

Light to import: spaCy is loaded only when entities are extracted, Starlette/uvicorn only by `serve`.
"""

from htr.index.errors import IndexStoreError, QueryError, SearchIndexError
from htr.index.store import EntityEntry, Hit, Index, PageStamp, SyncReport, WordBox, index_path, rebuild, sync

__all__ = [
    "EntityEntry",
    "Hit",
    "Index",
    "IndexStoreError",
    "PageStamp",
    "QueryError",
    "SearchIndexError",
    "SyncReport",
    "WordBox",
    "index_path",
    "rebuild",
    "sync",
    "find_entities",
    "Entity",
]


def __getattr__(name: str):  # lazy: entities pulls in the date rules only, spaCy on first use
    if name in ("find_entities", "Entity"):
        from htr.index import entities

        return getattr(entities, name)
    raise AttributeError(name)
