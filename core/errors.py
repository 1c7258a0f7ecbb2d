"""One error hierarchy. Every error names the file (and page/line) it is about, and says the `htr` exit status.

Exit statuses of `htr` (README "Exit codes"; `HTRError.exit_code` gives the error's):

    0  EXIT_OK        done (for `enrich`: failed pages within --max-failures)
    1  EXIT_FAILURES  it ran, but failed: more pages failed than --max-failures allows, the run stopped
                      (disk full), nothing could be scored, some pages could not be indexed  (RunFailed)
    2  EXIT_USAGE     bad arguments, options or settings, and any error not listed below    (ConfigError, HTRError)
    3  EXIT_INPUT     an input missing, unreadable or invalid: sources, ground truth, XML refused,
                      ALTO/PAGE; `htr validate` found problems            (InputError, XmlError, AltoError)
    4  EXIT_MODEL     a model that cannot be found, loaded or verified; `--device` not available
                                                                            (ModelError, DeviceError)
    5  EXIT_OUTPUT    the output folder cannot be used: not a folder, not writable, no space, another
                      run holds it                                 (OutputError, DiskFull, RunLocked)
  130                 interrupted (Ctrl-C)
"""

from __future__ import annotations

import errno

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13  # sqlite3.Error.sqlite_errorcode: "database or disk is full"

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INPUT, EXIT_MODEL, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5


class HTRError(Exception):
    """Base of all pipeline errors; `str()` is a one-line reason naming the file; `exit_code`: `htr`'s exit status."""

    exit_code = EXIT_USAGE

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

    exit_code = EXIT_USAGE


class InputError(HTRError):
    """An input that is missing or cannot be read: a source image (corrupt, truncated, empty, unsupported),
    a segmentation or ground-truth file. (A file that is not an image at all is not an error: discovery
    lists it as ignored.)"""

    exit_code = EXIT_INPUT


class ModelError(HTRError):
    """A model that cannot be found, loaded or verified."""

    exit_code = EXIT_MODEL


class SegmentationError(HTRError):
    """Kraken segmentation failed on a page."""


class RecognitionError(HTRError):
    """Kraken recognition failed on a page or line."""


class AltoError(HTRError):
    """ALTO that cannot be written, read or validated."""

    exit_code = EXIT_INPUT


class PreprocessError(HTRError):
    """Image preprocessing (orientation, deskew, crop, split, photometry) failed on a page."""


class ExportError(HTRError):
    """An export (IIIF, METS, PAGE) or a reading-room resource that cannot be built or written."""


class XmlError(InputError):
    """An XML file refused (DTD or entity declarations, too large, too deep) or not well-formed."""


class OutputError(HTRError):
    """The output folder cannot be used: not a folder, not writable, disk full, another run holds it."""

    exit_code = EXIT_OUTPUT


class DiskFull(OutputError):
    """No space left on the output's disk (ENOSPC, EDQUOT)."""


class RunLocked(OutputError):
    """Another `htr` run holds the output folder's lock."""


class DeviceError(ConfigError):
    """The `--device` asked for is not available on this machine."""

    exit_code = EXIT_MODEL


class RunFailed(HTRError):
    """A collection run that ended failed (too many failed pages, or stopped: disk full); carries its summary."""

    exit_code = EXIT_FAILURES

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
