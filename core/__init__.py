"""The small core every layer may import: errors, stage records, atomic writes, the safe XML parser.

It sits below `alto/` (format I/O), `htr/` (stages and services), `flows/` (Prefect) and `cli/`,
and imports nothing of this project: that is what lets `alto/` raise the project's own errors and
build ALTO from the stage records without importing `htr/` (see docs/ARCHITECTURE.md).
"""
