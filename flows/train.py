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
from htr.models import models_dir


@task(name="prepare-datasets")
def prepare_datasets(gt: list[str], work: str, val_docs: list[str] | None) -> dict:
    pages = [read_gt(f) for f in find_gt_files(gt)]
    held = set(val_docs) if val_docs else T.default_validation_documents(pages)
    return T.prepare(gt, Path(work), held)


@task(name="ketos-train")
def run_ketos(work: str, base: str | None, budget_minutes: float | None, device: str, spec: str) -> dict:
    run = T.ketos_train(Path(work) / "train.arrow", Path(work) / "val.arrow", Path(work),
                        spec=spec, base=Path(base) if base else None, budget_minutes=budget_minutes, device=device)
    return {**run.__dict__, "command": list(run.command)}


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
) -> dict:
    """Train a recognition model into `output` (models/NAME): weights, card, manifest entry, evaluation."""
    out = Path(output)
    name = out.name
    directory = out.parent if str(out.parent) not in ("", ".") else models_dir()
    work_dir = Path(work) if work else directory / f".train-{name}"
    t0 = time.monotonic()
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
        "trained_with": {"command": run["command"], "wall_s": round(run["wall_s"]), "stopped": run["stopped"],
                         "device": device, "machine": platform.platform()},
    }
    record = T.export(Path(run["checkpoint"]), directory, name, entry)
    evaluation = T.evaluate_and_card(directory, name, split, run, time.monotonic() - t0)
    return {"model": record, "evaluation": evaluation}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(train_model.fn.__doc__))
