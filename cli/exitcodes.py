"""Exit statuses of the `htr` command, one set for every sub-command."""

EXIT_OK = 0
EXIT_FAILURES = 1  # the run ended with failed pages (above --max-failures), or nothing could be scored
EXIT_USAGE = 2  # a one-line error: bad arguments, missing input, unusable model or output folder
EXIT_INVALID = 3  # `htr validate` found problems
EXIT_INTERRUPTED = 130  # Ctrl-C
