"""`htr train`: train or fine-tune a recognition model on ground truth (Prefect flow train-model).

Prefect, torch and Kraken are imported when the command runs, not to build the parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.exitcodes import EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `htr train` to the `htr` command's sub-commands."""
    t = subparsers.add_parser("train", help="train a recognition model on ground truth (Prefect flow train-model)")
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
    ft.add_argument(
        "--compact-checkpoint",
        action="store_true",
        default=None,
        help="keep the optimiser's moments in bfloat16 in the checkpoint (a third smaller; resuming then continues "
        "the run closely, not to the same bits)",
    )
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`htr train`: prepare the fine-tuning settings, run the flow, print the model and its validation CER."""
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
            "compact_checkpoint": args.compact_checkpoint,
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
