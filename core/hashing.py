"""The one file hasher: sha256 of a file's bytes, streamed (models, sources, segmentation files)."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20  # bytes read at a time


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file at `path`, read in 1 MiB chunks (raises OSError when it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
