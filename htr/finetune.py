"""Fine-tuning a PP-OCRv6 recogniser on ground-truth lines: plain PyTorch, CTC, resumable, budgeted by steps.

Why not `ketos train`: Kraken's PP-OCRv6 trainer adds an NRTR decoder head, the Muon optimiser and
`torch.compile`, which make a CPU step several times dearer; fine-tuning a pretrained network needs
none of them. This loop trains the very network Kraken runs at inference, on line crops cut the way
inference cuts them (`htr.linedata`), and writes ordinary Kraken model files (`htr.ppocr_model`).

It needs torch, numpy and Pillow only (OpenCV is used for augmentation when installed), so the same
code runs here on CPU and on a bare GPU machine (`make train-gpu`). A run is budgeted in optimiser
steps (deterministic for a seed) and optionally in minutes; it resumes from its checkpoint with the
optimiser, scheduler and random state.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from htr import atomic
from htr.linedata import LineSet
from htr.ppocr_model import PPModel

Log = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneSettings:
    """What a fine-tuning run does; everything that changes the result is here (and in the checkpoint)."""

    steps: int = 2000  # optimiser steps in all (a resumed run continues to this total)
    minutes: float | None = None  # wall-clock cap for this invocation (checkpoint kept; resume later)
    batch_size: int = 16
    lr: float = 3e-4
    min_lr_ratio: float = 0.05  # cosine schedule floor, as a share of lr
    warmup: int = 100
    weight_decay: float = 1e-4
    seed: int = 42
    augment: bool = True
    padding: int = 16  # px of white on both sides, as at inference (RecognizeSettings.padding)
    bn_mode: str = "frozen"  # "frozen": BatchNorm statistics kept (eval); "train": batch statistics
    val_every: int = 250
    val_lines: int = 400  # validation lines scored at each check (a fixed, seeded sample)
    threads: int | None = None
    device: str = "cpu"
    max_width: int = 2400  # px after scaling; longer lines are skipped in training
    # AdamW's moments in bfloat16 in the checkpoint: a third smaller (what lets the checkpoint of models/default
    # live in git, under 30 MB); a resumed run then continues the run closely, not to the same bits
    compact_checkpoint: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class History:
    step: int = 0
    seen_lines: int = 0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0
    best_cer: float | None = None
    best_step: int | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- text & metrics


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance (rapidfuzz when installed)."""
    try:
        from rapidfuzz.distance import Levenshtein

        return int(Levenshtein.distance(a, b))
    except ImportError:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]


def greedy_decode(probs, lens, l2c: dict[int, str]) -> list[str]:
    """Best path CTC decoding of (N, C, W) scores."""
    best = probs.argmax(1).cpu().numpy()
    out = []
    for row, n in zip(best, lens.tolist()):
        prev, chars = 0, []
        for lab in row[:n]:
            if lab != prev and lab != 0:
                chars.append(l2c.get(int(lab), ""))
            prev = lab
        out.append(" ".join("".join(chars).split()))
    return out


# --------------------------------------------------------------------------- batches


def _augment(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Cheap, label-preserving distortions of one line (H×W×3 uint8, white background)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - bare GPU machines without OpenCV
        has_cv2 = False
    else:
        has_cv2 = True
    h, w = img.shape[:2]
    out = img
    if has_cv2 and rng.random() < 0.5:  # slant / small rotation / vertical jitter
        shear = rng.uniform(-0.3, 0.3)
        angle = math.radians(rng.uniform(-1.0, 1.0))
        sy = rng.uniform(0.9, 1.05)
        m = np.array(
            [[math.cos(angle), -math.sin(angle) + shear, 0.0], [math.sin(angle), math.cos(angle) * sy, 0.0]],
            dtype=np.float32,
        )
        cx, cy = w / 2, h / 2
        m[:, 2] = [cx - m[0, 0] * cx - m[0, 1] * cy, cy - m[1, 0] * cx - m[1, 1] * cy + rng.uniform(-2, 2)]
        pad = int(abs(shear) * h) + 2
        m[0, 2] += pad
        out = cv2.warpAffine(out, m, (w + 2 * pad, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if has_cv2 and rng.random() < 0.3:  # width
        nw = max(8, int(out.shape[1] * rng.uniform(0.8, 1.2)))
        out = cv2.resize(out, (nw, h), interpolation=cv2.INTER_AREA)
    if has_cv2 and rng.random() < 0.25:  # stroke width
        k = np.ones((2, 2), np.uint8)
        out = cv2.erode(out, k) if rng.random() < 0.5 else cv2.dilate(out, k)
    if has_cv2 and rng.random() < 0.25:  # blur
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.4, 1.0))
    f: np.ndarray = out.astype(np.float32)  # float64 once noise is added
    if rng.random() < 0.2:  # no colour
        f = np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.6:  # contrast / brightness
        f = (f - 128.0) * rng.uniform(0.7, 1.2) + 128.0 + rng.uniform(-25, 25)
    if rng.random() < 0.2:  # sensor noise
        f = f + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 8), f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


def make_batch(images: Sequence[np.ndarray], padding: int):
    """Kraken's recognition input for a batch: white padding, RGB scaled 0..1 and inverted, zero-padded right.

    Returns (x (N, 3, H, W), lens (N,)).
    """
    import torch

    widths = [im.shape[1] + 2 * padding for im in images]
    h = images[0].shape[0]
    x = np.zeros((len(images), 3, h, max(widths)), dtype=np.float32)
    for i, im in enumerate(images):
        x[i, :, :, padding : padding + im.shape[1]] = 1.0 - im.transpose(2, 0, 1).astype(np.float32) / 255.0
    return torch.from_numpy(x), torch.tensor(widths, dtype=torch.long)


def _batches(order: list[int], widths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar widths (less padding), in random order."""
    chunk = batch_size * 32
    batches: list[list[int]] = []
    for a in range(0, len(order), chunk):
        part = sorted(order[a : a + chunk], key=lambda i: widths[i])
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


# --------------------------------------------------------------------------- inference


def predict(model: PPModel, lines: LineSet, batch_size: int = 16, padding: int = 16, device: str = "cpu") -> list[str]:
    """Greedy transcription of every line of `lines` (model in eval mode)."""
    import torch

    l2c = model.label_to_char()
    net = model.net.to(device)
    was = net.training
    net.eval()
    order = sorted(range(len(lines)), key=lambda i: lines.images[i].shape[1])
    out: dict[int, str] = {}
    with torch.inference_mode():
        for a in range(0, len(order), batch_size):
            idx = order[a : a + batch_size]
            x, lens = make_batch([lines.images[i] for i in idx], padding)
            logits, olens = net(x.to(device), lens.to(device))
            for i, text in zip(idx, greedy_decode(logits.squeeze(2), olens, l2c)):
                out[i] = text
    net.train(was)
    return [out[i] for i in range(len(lines))]


def score(lines: LineSet, hyps: Sequence[str]) -> dict[str, Any]:
    """CER (micro-averaged) overall and per document."""
    per: dict[str, list[int]] = {}
    for s, h in zip(lines.samples, hyps):
        ref = " ".join(s.text.split())
        e = edit_distance(ref, h)
        for key in ("overall", s.document):
            c = per.setdefault(key, [0, 0, 0])
            c[0] += e
            c[1] += len(ref)
            c[2] += 1
    return {k: {"cer": round(v[0] / v[1], 5) if v[1] else None, "chars": v[1], "lines": v[2]} for k, v in per.items()}


# --------------------------------------------------------------------------- training


def _ctc_length(target: Sequence[int]) -> int:
    """Output frames CTC needs for a target: one per label, plus a blank between repeated labels."""
    return len(target) + sum(1 for a, b in zip(target, target[1:]) if a == b)


def _set_bn_mode(net, mode: str) -> None:
    from torch import nn

    if mode == "frozen":
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.eval()


def _lr_at(step: int, s: FinetuneSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _sample_val(val: LineSet, n: int, seed: int) -> LineSet:
    if len(val) <= n:
        return val
    rng = random.Random(seed)
    by_doc: dict[str, list[int]] = {}
    for i, s in enumerate(val.samples):
        by_doc.setdefault(s.document, []).append(i)
    share = n / len(val)
    keep: list[int] = []
    for doc in sorted(by_doc):  # stratified: every document keeps its share (at least 10 lines)
        idx = by_doc[doc]
        keep += sorted(rng.sample(idx, min(len(idx), max(10, round(len(idx) * share)))))
    return val.subset(sorted(keep))


def compact_moments(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """An optimiser state_dict with its floating-point moment tensors (AdamW's exp_avg, exp_avg_sq) in
    bfloat16; `step` and everything else as is. `Optimizer.load_state_dict` casts them back to the
    parameters' dtype."""
    import torch

    state = {
        k: {n: v.to(torch.bfloat16) if n != "step" and v.is_floating_point() and v.ndim else v for n, v in st.items()}
        for k, st in optimizer_state["state"].items()
    }
    return {**optimizer_state, "state": state}


def compact_checkpoint(path: Path) -> None:
    """Rewrite the checkpoint at `path` with `compact_moments` (FinetuneSettings.compact_checkpoint), in place."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    ck["optimizer"] = compact_moments(ck["optimizer"])
    ck["settings"] = {**ck.get("settings", {}), "compact_checkpoint": True}
    with atomic.replacing(path) as fh:
        torch.save(ck, fh)


def finetune(
    model: PPModel,
    train: LineSet,
    val: LineSet | None,
    settings: FinetuneSettings,
    work: Path,
    log: Log = print,
    on_best: Callable[[PPModel, dict], None] | None = None,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Fine-tune `model` in place on `train`; checkpoint to `work/last.pt`, best model to `work/best.safetensors`.

    Resumes from `work/last.pt` when it exists: a run stopped (by `minutes`, `stop_at` or a kill after
    a checkpoint) and resumed with the same settings ends with the same weights as one never stopped.
    A larger `steps` on resume stretches the learning-rate schedule from there on.
    Returns the run's history (checks with validation CER, seconds, lines seen).
    """
    import torch

    from htr import ppocr_model

    s = settings
    if s.threads:
        torch.set_num_threads(s.threads)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / "last.pt"
    net = model.net.to(s.device)
    model.label_to_char()  # checks the codec now: one label per character (ValueError otherwise)

    missing = set(train.charset()) - set(model.codec)
    if missing:
        raise ValueError(
            f"characters of the training lines missing from the model's codec: {''.join(sorted(missing))!r}"
        )
    targets = [[model.codec[c][0] for c in smp.text] for smp in train.samples]
    widths = [im.shape[1] for im in train.images]
    usable = [
        i
        for i in range(len(train))
        if targets[i]
        and widths[i] + 2 * s.padding <= s.max_width
        and _ctc_length(targets[i]) <= (widths[i] + 2 * s.padding) // 8
    ]
    val_set = _sample_val(val, s.val_lines, s.seed) if val is not None and len(val) else None

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=s.lr
    )
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True, reduction="mean")
    hist = History()
    epoch_order: list[int] = []  # what is left of the current pass over the training lines
    rng = random.Random(s.seed)
    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=s.device, weights_only=False)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["optimizer"])
        hist = History(**ck["history"])
        rng.setstate(ck["rng"])
        epoch_order = list(ck.get("epoch_order", []))
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("codec") != model.codec:
            raise ValueError(f"{ckpt_path}: checkpoint codec differs from the model's; start a new work folder")
        if not (work / "best.safetensors").is_file():  # only the checkpoint was kept: the next check sets a best
            hist.best_cer = hist.best_step = None
        log(f"resumed at step {hist.step} (best CER {hist.best_cer}) from {ckpt_path}")

    def checkpoint() -> None:
        optimizer = opt.state_dict()
        with atomic.replacing(ckpt_path) as fh:
            torch.save(
                {
                    "net": net.state_dict(),
                    "optimizer": compact_moments(optimizer) if s.compact_checkpoint else optimizer,
                    "history": asdict(hist),
                    "rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(),
                    "codec": model.codec,
                    "epoch_order": epoch_order,
                    "settings": s.to_dict(),
                },
                fh,
            )

    def validate() -> dict[str, Any]:
        res = score(val_set, predict(model, val_set, s.batch_size, s.padding, s.device)) if val_set else {}
        check = {
            "step": hist.step,
            "lines_seen": hist.seen_lines,
            "train_s": round(hist.train_seconds, 1),
            "cpu_s": round(hist.cpu_seconds, 1),
            "cer": res.get("overall", {}).get("cer"),
            "documents": {k: v["cer"] for k, v in res.items() if k != "overall"},
        }
        hist.checks.append(check)
        cer = check["cer"]
        if cer is not None and (hist.best_cer is None or cer < hist.best_cer):
            hist.best_cer, hist.best_step = cer, hist.step
            model.extra["accuracy"] = [[hist.step, 1 - cer]]
            ppocr_model.save(model, work / "best.safetensors")
            if on_best:
                on_best(model, check)
        log(f"step {hist.step}: validation CER {cer} {json.dumps(check['documents'])}")
        return check

    if not hist.checks:
        validate()
    t_start = time.monotonic()
    net.train()
    _set_bn_mode(net, s.bn_mode)
    while hist.step < s.steps:
        if s.minutes is not None and time.monotonic() - t_start > s.minutes * 60:
            log(f"time budget of {s.minutes} min reached at step {hist.step}")
            break
        if stop_at is not None and hist.step >= stop_at:
            break
        if not epoch_order:
            order = usable[:]
            rng.shuffle(order)
            epoch_order = [i for b in _batches(order, widths, s.batch_size, rng) for i in b[::-1]][::-1]
            # consumed from the end: batches stay contiguous
        idx = [epoch_order.pop() for _ in range(min(s.batch_size, len(epoch_order)))]
        t0, c0 = time.monotonic(), time.process_time()
        imgs = [_augment(train.images[i], rng) if s.augment else train.images[i] for i in idx]
        x, lens = make_batch(imgs, s.padding)
        tgt = torch.tensor([t for i in idx for t in targets[i]], dtype=torch.long)
        tlens = torch.tensor([len(targets[i]) for i in idx], dtype=torch.long)
        for g in opt.param_groups:
            g["lr"] = _lr_at(hist.step, s)
        logits, olens = net(x.to(s.device), lens.to(s.device))
        logp = logits.squeeze(2).log_softmax(1).permute(2, 0, 1)  # (W, N, C)
        loss = ctc(logp, tgt.to(logp.device), olens, tlens.to(logp.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        hist.step += 1
        hist.seen_lines += len(idx)
        hist.train_seconds += time.monotonic() - t0
        hist.cpu_seconds += time.process_time() - c0
        if hist.step % 50 == 0:
            log(
                f"step {hist.step}/{s.steps} loss {loss.item():.3f} lr {_lr_at(hist.step, s):.2e} "
                f"({hist.train_seconds / hist.step:.2f} s/step)"
            )
        if hist.step % s.val_every == 0 or hist.step == s.steps:
            validate()
            net.train()
            _set_bn_mode(net, s.bn_mode)
            checkpoint()
    if not hist.checks or hist.checks[-1]["step"] != hist.step or not (work / "best.safetensors").is_file():
        validate()
    checkpoint()
    net.eval()
    return asdict(hist)
