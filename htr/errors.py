"""One error hierarchy. Every error names the file (and page/line) it is about."""

from __future__ import annotations


class HTRError(Exception):
    """Base of all pipeline errors; `str()` is a one-line reason naming the file."""

    def __init__(self, message: str, *, path: str | None = None, page_id: str | None = None, line_id: str | None = None):
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
