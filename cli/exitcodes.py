"""Exit statuses of the `htr` command, one set for every sub-command (the table is in core/errors.py)."""

from core.errors import EXIT_FAILURES, EXIT_INPUT, EXIT_MODEL, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE

EXIT_INVALID = EXIT_INPUT  # `htr validate` found problems: the input is invalid
EXIT_INTERRUPTED = 130  # Ctrl-C

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURES",
    "EXIT_USAGE",
    "EXIT_INPUT",
    "EXIT_MODEL",
    "EXIT_OUTPUT",
    "EXIT_INVALID",
    "EXIT_INTERRUPTED",
]
