"""The `htr` command (console script `htr = cli.main:main`; also `python -m cli`).

The top layer: it may import flows, htr, alto and core; nothing imports it (docs/ARCHITECTURE.md).
"""
