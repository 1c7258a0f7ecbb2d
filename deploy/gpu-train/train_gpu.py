"""Fine-tune a PP-OCRv6 recogniser on a bare GPU machine from a bundle made by `pack.py`.

Needs Python with torch, numpy and Pillow; Kraken's network code and safetensors come from the
bundle's wheels (installed offline by `train_gpu.sh`). Trains for a fixed number of minutes: a short
probe measures the step time, the cosine schedule is sized to the budget, and the best model
(a Kraken .safetensors), the log and the training history land in OUT.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from htr import finetune, linedata, ppocr_import, ppocr_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None, help="cap (a dry run uses a handful)")
    a = ap.parse_args(argv)
    import torch

    a.out.mkdir(parents=True, exist_ok=True)
    log_file = open(a.out / "train.log", "a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    t0 = time.monotonic()
    manifest = json.loads((a.bundle / "bundle.json").read_text())
    device = a.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        log("no CUDA device: falling back to cpu")
        device = "cpu"
    import kraken

    log(
        f"python {platform.python_version()}, torch {torch.__version__}, kraken from {Path(kraken.__file__).parent}, "
        f"device {device}" + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else "")
    )
    lines = linedata.load(a.bundle / manifest["lines"])
    train, val = lines.split(manifest["validation_documents"])
    log(f"{len(train)} training lines, {len(val)} validation lines")
    model = ppocr_model.load(a.bundle / manifest["base"])
    added = model.extend(train.charset())
    s = finetune.FinetuneSettings(
        **{**manifest["settings"], "device": device, **({"batch_size": a.batch_size} if a.batch_size else {})}
    )
    if manifest.get("recalibrate_bn", True):
        idx = list(range(0, len(train), max(1, len(train) // 400)))[:400]
        n = ppocr_import.recalibrate_bn(
            model.net,
            (
                finetune.make_batch([train.images[i] for i in idx[k : k + 16]], s.padding)
                for k in range(0, len(idx), 16)
            ),
        )
        log(f"added characters {''.join(added)!r}; recalibrated {n} BatchNorm layers")
    model.net.to(device)

    # probe: time a few steps on a copy, then size the schedule to the budget
    import copy

    probe_dir = a.out / "probe"
    probe = ppocr_model.PPModel(copy.deepcopy(model.net), model.variant, model.height, dict(model.codec), {})
    probe_steps = 5 if a.max_steps and a.max_steps < 50 else 30
    ps = replace(s, steps=probe_steps, val_every=10**9, val_lines=0)
    h = finetune.finetune(probe, train, None, ps, probe_dir, log=lambda m: None)
    step_s = h["train_seconds"] / max(1, h["step"])
    budget_s = a.minutes * 60 - (time.monotonic() - t0) - 30
    steps = max(1, int(budget_s * 0.85 / step_s))  # ~15 % for validations and checkpoints
    if a.max_steps:
        steps = min(steps, a.max_steps)
    s = replace(s, steps=steps, minutes=max(0.1, budget_s / 60), val_every=max(1, steps // 8))
    log(f"probe: {step_s:.3f} s/step at batch {s.batch_size}: training {steps} steps in {budget_s / 60:.1f} min")
    hist = finetune.finetune(model, train, val, s, a.out / "work", log=log)
    best = a.out / "work" / "best.safetensors"
    (a.out / "model.safetensors").write_bytes(best.read_bytes())
    (a.out / "history.json").write_text(
        json.dumps({"settings": s.to_dict(), "history": hist, "wall_s": round(time.monotonic() - t0, 1)}, indent=1)
    )
    log(f"best validation CER {hist['best_cer']} at step {hist['best_step']}; model: {a.out / 'model.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
