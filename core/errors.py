"""One error hierarchy. Every error names the file (and page/line) it is about."""

from __future__ import annotations

import errno

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13  # sqlite3.Error.sqlite_errorcode: "database or disk is full"


class HTRError(Exception):
    """Base of all pipeline errors; `str()` is a one-line reason naming the file."""

    def __init__(
        self, message: str, *, path: str | None = None, page_id: str | None = None, line_id: str | None = None
    ):
        self.message = message
        self.path = path
        self.page_id = page_id
        self.line_id = line_id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or self.page_id or ""
        if self.line_id:
            where = f"{where} line {self.line_id}" if where else f"line {self.line_id}"
        return f"{where}: {self.message}" if where else self.message


class ConfigError(HTRError):
    """Invalid settings or command-line arguments."""


class InputError(HTRError):
    """A source file that cannot be read as an image (corrupt, truncated, empty, unsupported)."""


class NotAnImage(InputError):
    """A file that is not an image at all: skipped, not failed."""


class ModelError(HTRError):
    """A model that cannot be found, loaded or verified."""


class SegmentationError(HTRError):
    """Kraken segmentation failed on a page."""


class RecognitionError(HTRError):
    """Kraken recognition failed on a page or line."""


class AltoError(HTRError):
    """ALTO that cannot be written, read or validated."""


class WorkerDied(HTRError):
    """The worker process handling a page died (out of memory, killed)."""


class PreprocessError(HTRError):
    """Image preprocessing (orientation, deskew, crop, split, photometry) failed on a page."""


class ExportError(HTRError):
    """An export (IIIF, METS, PAGE) or a reading-room resource that cannot be built or written."""


class XmlError(InputError):
    """An XML file refused (DTD or entity declarations, too large, too deep) or not well-formed."""


class OutputError(HTRError):
    """The output folder cannot be used: not a folder, not writable, disk full, another run holds it."""


class DiskFull(OutputError):
    """No space left on the output's disk (ENOSPC, EDQUOT)."""


class RunLocked(OutputError):
    """Another `htr` run holds the output folder's lock."""


class DeviceError(ConfigError):
    """The `--device` asked for is not available on this machine."""


class RunFailed(HTRError):
    """A collection run that ended failed (too many failed pages, or stopped: disk full); carries its summary."""

    def __init__(self, message: str, summary: dict | None = None, **kw):
        self.summary = summary or {}
        super().__init__(message, **kw)

    def __reduce__(self):  # keeps the summary through pickling (Prefect states, process pools)
        return (self.__class__, (self.message, self.summary), self.__dict__)


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it was raised from, says the disk is full (ENOSPC, EDQUOT, SQLITE_FULL)."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
            return True
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
