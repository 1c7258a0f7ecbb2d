"""Atomic file writes: temp file in the same folder, fsync, rename. A killed run never leaves a partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def replacing(path: str | Path, durable: bool = True) -> Iterator[BinaryIO]:
    """Write `path` atomically through a file object: a temp file beside it, renamed on success.

    On any failure (an exception, ENOSPC...) the temp file is removed and `path` is untouched.
    `durable`: fsync the file and the folder (work files that a crash may lose skip it). The file
    keeps the mode of the one it replaces (0644 for a new file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync the folder.

    Readers see the old file or the new one, never a mix; on failure `path` is untouched and no
    temp file remains.
    """
    with replacing(path) as fh:
        fh.write(data)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows fsync on a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def sweep(folder: str | Path) -> int:
    """Delete temp files left by a killed run under `folder` (`.<name>.tmp-*`, the only temp name the project
    makes); returns how many."""
    n = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for p in folder.rglob(f".*{TMP_MARK}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n
