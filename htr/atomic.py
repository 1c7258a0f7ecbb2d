"""Atomic file writes, as `htr` code has always imported them; they live in `core.atomic` (used by `alto/` too)."""

from core.atomic import TMP_MARK, replacing, sweep, write_bytes, write_text  # noqa: F401
