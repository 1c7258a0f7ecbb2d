"""The project's error hierarchy, as `htr` code has always imported it.

The classes live in `core.errors` (below `alto/`, so that the ALTO reader and writer raise the same
errors without importing `htr`); this module re-exports them, so `htr.errors.AltoError is
core.errors.AltoError` and results pickled under the old name still load.
"""

from core.errors import (  # noqa: F401
    DISK_FULL_ERRNOS,
    EXIT_FAILURES,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    SQLITE_FULL,
    AltoError,
    ConfigError,
    DeviceError,
    DiskFull,
    ExportError,
    HTRError,
    InputError,
    ModelError,
    OutputError,
    PreprocessError,
    RecognitionError,
    RunFailed,
    RunLocked,
    SegmentationError,
    XmlError,
    is_disk_full,
)
