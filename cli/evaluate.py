"""`htr evaluate`: score predicted ALTO (--pred) or a recognition model (--model) against ground truth.

The scoring is htr/evaluate.py, the HTML page htr/evaluate_report.py; this module only parses the
command line and prints; both are imported when the command runs, not to build the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.exitcodes import EXIT_FAILURES, EXIT_INPUT, EXIT_OK, EXIT_USAGE
from htr.errors import HTRError, InputError

if TYPE_CHECKING:
    from htr.evaluate import EvalResult


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `evaluate` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate",
        help="score predicted ALTO (--pred) or a recognition model (--model) against ground-truth ALTO/PAGE",
        description="CER / WER (micro-averaged) per page, document, dataset and overall. Text is always NFC, "
        "whitespace-folded and &amp;-fixed; lines with ~~~ placeholders are excluded.",
    )
    p.add_argument(
        "gt", nargs="+", metavar="GT", help="ground-truth ALTO/PAGE files or folders (ALTO preferred when both exist)"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred", type=Path, metavar="OUT", help="output folder of `htr enrich` (reads OUT/alto/*.xml)")
    src.add_argument("--model", metavar="M", help="recognise the GT lines with this model (manifest name or file)")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N (--model)")
    p.add_argument("--batch-size", type=int, default=1, help="lines per recognition batch (--model)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every score as JSON")
    p.add_argument("--json-lines", action="store_true", help="include every scored line in the JSON")
    p.add_argument("--html", type=Path, metavar="FILE", help="write an HTML page of the worst lines")
    p.add_argument("--worst", type=int, default=50, metavar="N", help="lines shown in the HTML page (default 50)")
    p.add_argument("--ignore-case", action="store_true", help="compare in lower case")
    p.add_argument("--strip-punctuation", action="store_true", help="drop Unicode punctuation (P*) before comparing")
    p.add_argument(
        "--no-superscript-marker", action="store_true", help="drop the ^ superscript marker before comparing"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """`htr evaluate`: 0 ok, 1 nothing could be scored, 2 usage error, 3 no such or no readable input, 4 model
    or device (the exit codes of core/errors.py)."""
    from rich.console import Console

    from htr.evaluate import Normalization, evaluate_model, evaluate_predictions, load_gt, print_summary, write_json
    from htr.evaluate_report import write_html

    err = Console(stderr=True)
    out = Console()
    if args.worst < 0:
        err.print("htr evaluate: --worst must be >= 0")
        return EXIT_USAGE
    norm = Normalization(args.ignore_case, args.strip_punctuation, args.no_superscript_marker)
    try:
        if args.pred is not None and not args.pred.exists():
            raise InputError("no such prediction folder", path=str(args.pred))
        pages, errors = load_gt(args.gt)
        for msg in errors:
            err.print(f"[yellow]warning[/] {msg}", markup=True, highlight=False)
        if not pages:
            err.print("htr evaluate: no readable ground-truth ALTO/PAGE file in " + ", ".join(map(str, args.gt)))
            return EXIT_INPUT
        progress = None if args.quiet else (lambda key: err.print(f"[dim]{key}[/]", highlight=False))
        if args.pred is not None:
            result = evaluate_predictions(args.gt, args.pred, normalization=norm, gt_pages=pages, progress=progress)
            result = _with_errors(result, errors)
        else:
            from htr.config import make_settings
            from htr.models import resolve

            settings = make_settings(device=args.device, recognize={"model": args.model, "batch_size": args.batch_size})
            model = resolve(args.model)
            result = evaluate_model(
                pages, model, settings.recognize, settings.device, normalization=norm, progress=progress, errors=errors
            )
    except HTRError as e:
        err.print(f"htr evaluate: error: {e}", highlight=False)
        return e.exit_code
    for msg in result.errors[len(errors) :]:
        err.print(f"[yellow]warning[/] {msg}", highlight=False)
    if result.unpaired_gt:
        err.print(f"{len(result.unpaired_gt)} GT page(s) without a prediction (not scored)", highlight=False)
    if result.unpaired_pred:
        err.print(f"{len(result.unpaired_pred)} prediction(s) without GT (ignored)", highlight=False)
    print_summary(result, out)
    if args.json:
        write_json(result, args.json, lines=args.json_lines)
        err.print(f"JSON: {args.json}", highlight=False)
    if args.html:
        write_html(result, args.html, worst=args.worst)
        err.print(f"HTML: {args.html}", highlight=False)
    return EXIT_OK if result.pages else EXIT_FAILURES  # nothing could be scored


def _with_errors(result: EvalResult, errors: list[str]) -> EvalResult:
    from dataclasses import replace

    return replace(result, errors=tuple(errors) + result.errors)
