"""Recognition training: ground truth -> Kraken binary datasets -> `ketos train`.

The third (and last) module allowed to touch Kraken, next to segment.py and
recognize.py: training is Kraken's job, this module only prepares its input.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
    train, val = [], []
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
