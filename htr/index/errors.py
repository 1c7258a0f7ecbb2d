"""Errors of the search index, in htr.errors' hierarchy (one-line `str()`, never a traceback for users)."""

from __future__ import annotations

from htr.errors import HTRError


class SearchIndexError(HTRError):
    """Base of the index errors."""


class IndexStoreError(SearchIndexError):
    """The index file cannot be opened, read or written (or was made by another version)."""


class QueryError(SearchIndexError):
    """A search query that cannot be understood; `str()` explains it in one line."""
