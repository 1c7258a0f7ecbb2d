"""The `htr` command's layout: one module per sub-command, registered without importing anything heavy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from cli.main import SUBCOMMANDS, parser

HEAVY = ("prefect", "kraken", "torch", "spacy", "starlette", "uvicorn", "lxml", "PIL", "rich", "pydantic")


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import json, sys; import cli.main; cli.main.parser().parse_args(['enrich', 'in', '-o', 'out']); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_every_subcommand_is_a_module_with_register_and_run():
    listed = "{enrich,validate,train,models,evaluate,watch,index,search,entities,export,serve}"
    assert listed in parser().format_help()
    assert [m.__name__ for m in SUBCOMMANDS] == ["cli." + n for n in listed.strip("{}").split(",")]
    for module in SUBCOMMANDS:
        assert callable(module.register) and callable(module.run), module.__name__
    for argv in (["validate", "x.xml"], ["models", "list"], ["search", "OUT", "q"], ["serve", "OUT"]):
        args = parser().parse_args(argv)
        assert args.func.__module__ == f"cli.{argv[0]}"


def test_only_cli_has_a_command_line():
    """htr/, flows/, alto/ and core/ are libraries: argument parsing belongs to cli/ (docs/ARCHITECTURE.md)."""
    root = Path(__file__).resolve().parent.parent
    parsers = [
        str(f.relative_to(root))
        for pkg in ("core", "alto", "htr", "flows")
        for f in sorted((root / pkg).rglob("*.py"))
        if re.search(r"^\s*(import argparse|from argparse import)", f.read_text(encoding="utf-8"), re.M)
    ]
    assert parsers == []
