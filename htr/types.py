"""The frozen stage records, as `htr` code has always imported them.

They live in `core.types` (below `alto/`, whose writer builds ALTO from them); this module re-exports
them, so results pickled under the old name (Prefect's persisted task results) still load.
"""

from core.types import (  # noqa: F401
    PART_SUFFIXES,
    Box,
    Line,
    LineText,
    PageImage,
    PageRef,
    PageResult,
    PageSegmentation,
    PageText,
    Point,
    ProcessingStep,
    Region,
    Word,
    bbox_of,
    part_ids,
    split_part,
)
