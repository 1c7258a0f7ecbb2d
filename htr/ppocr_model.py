"""Kraken `ppocrv6` recognition model files, read and written without Kraken's heavy imports.

Kraken stores a PP-OCRv6 model as safetensors: tensors under `<uuid>.nn.*` and a `kraken_meta` JSON
header naming the class (`PPOCRv6Model`) and its arguments (variant, classes, line height, codec).
This module builds the network from Kraken's own definition (`kraken/lib/ppocr/network.py`, pure
torch) and reads/writes that format with `safetensors`, so that training runs where only torch,
numpy, Pillow and the Kraken wheel (installed without its dependencies) are present: a bare GPU
machine. Files written here load in Kraken (`RecognitionTaskModel.load_model`) like any other.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KRAKEN_MIN_VERSION = "7.1.0"
_ALIAS = "_htr_kraken_ppocr"


def _network_module():
    """kraken.lib.ppocr.network, imported without kraken.lib.ppocr's package __init__ (Lightning, etc.)."""
    if _ALIAS + ".network" in sys.modules:
        return sys.modules[_ALIAS + ".network"]
    spec = importlib.util.find_spec("kraken")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kraken is not installed (pip install --no-deps kraken==7.1.1 is enough for training)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "lib" / "ppocr"
    pkg = types.ModuleType(_ALIAS)
    pkg.__path__ = [str(folder)]  # a namespace for the network files only: their __init__ is not run
    sys.modules[_ALIAS] = pkg
    return importlib.import_module(_ALIAS + ".network")


def build_network(variant: str, num_classes: int):
    """Kraken's PP-OCRv6 recogniser (backbone, neck, CTC head), randomly initialised."""
    return _network_module().build_recognizer(variant, num_classes=num_classes)


def rep_dw_class():
    return (
        sys.modules[_ALIAS + ".backbone"].RepDWConv
        if _ALIAS + ".backbone" in sys.modules
        else importlib.import_module(_ALIAS + ".backbone").RepDWConv
    )


@dataclass
class PPModel:
    """A PP-OCRv6 network with what Kraken needs to rebuild it (codec as grapheme -> [label])."""

    net: Any
    variant: str
    height: int
    codec: dict[str, list[int]]
    extra: dict[str, Any] = field(default_factory=dict)  # any other kraken_meta keys (kept on save)

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def charset(self) -> str:
        return "".join(sorted(self.codec, key=lambda c: self.codec[c][0]))

    def label_to_char(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for ch, labels in self.codec.items():
            if len(labels) != 1:
                raise ValueError(f"multi-label codec entry {ch!r} not supported")
            out[labels[0]] = ch
        return out

    # ---------------------------------------------------------------- output layer

    def _proj(self):
        head = self.net.head
        return head.fc if hasattr(head, "fc") else head.fc2

    def resize_output(self, keep_labels: list[int], new: int = 0) -> None:
        """Keep output rows `keep_labels` (blank 0 first), in that order, then add `new` fresh rows."""
        import torch
        from torch import nn

        proj = self._proj()
        idx = torch.tensor(keep_labels, dtype=torch.long)
        w = proj.weight.detach().index_select(0, idx)
        b = proj.bias.detach().index_select(0, idx)
        if new:
            extra = torch.empty(new, w.shape[1])
            nn.init.trunc_normal_(extra, std=0.02)
            w = torch.cat([w, extra])
            b = torch.cat([b, torch.full((new,), float(b[1:].mean()) if len(b) > 1 else 0.0)])
        proj.out_features = w.shape[0]
        proj.weight = nn.Parameter(w)
        proj.bias = nn.Parameter(b)
        self.net.num_classes = w.shape[0]

    def prune(self, keep: set[str]) -> None:
        """Drop every output class whose character is not in `keep`; renumber the codec."""
        order = sorted(self.codec, key=lambda c: self.codec[c][0])
        kept = [c for c in order if c in keep]
        self.resize_output([0] + [self.codec[c][0] for c in kept])
        self.codec = {c: [i + 1] for i, c in enumerate(kept)}

    def extend(self, chars: str) -> list[str]:
        """Add output classes for characters the codec lacks; returns them."""
        new = sorted(set(chars) - set(self.codec))
        if new:
            n = self.num_classes
            self.resize_output(list(range(n)), len(new))
            for i, c in enumerate(new):
                self.codec[c] = [n + i]
        return new

    # ---------------------------------------------------------------- files

    def meta(self) -> dict[str, Any]:
        return {
            **self.extra,
            "_kraken_min_version": KRAKEN_MIN_VERSION,
            "_tasks": ["recognition"],
            "_model": "PPOCRv6Model",
            "variant": self.variant,
            "num_classes": self.num_classes,
            "height": self.height,
            "codec": self.codec,
            "seg_type": self.extra.get("seg_type", "baselines"),
            "one_channel_mode": self.extra.get("one_channel_mode"),
            "legacy_polygons": self.extra.get("legacy_polygons", False),
            "accuracy": self.extra.get("accuracy", []),
            "metrics": self.extra.get("metrics", []),
        }


def save(model: PPModel, path: Path) -> Path:
    """Write a Kraken-loadable safetensors file (atomically: `atomic.write_bytes`)."""
    from safetensors.torch import save as to_bytes

    from htr import atomic

    prefix = str(uuid.uuid4())
    tensors = {f"{prefix}.nn.{k}": v.detach().cpu().contiguous().clone() for k, v in model.net.state_dict().items()}
    path = Path(path)
    meta = {"kraken_meta": json.dumps({prefix: model.meta()}, ensure_ascii=False)}
    atomic.write_bytes(path, to_bytes(tensors, metadata=meta))
    return path


def load(path: Path) -> PPModel:
    """Read a Kraken `PPOCRv6Model` safetensors file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta_all = json.loads((f.metadata() or {}).get("kraken_meta", "null") or "null")
    if not isinstance(meta_all, dict):
        raise ValueError(f"{path}: no kraken metadata")
    hit = next(((k, v) for k, v in meta_all.items() if v.get("_model") == "PPOCRv6Model"), None)
    if hit is None:
        raise ValueError(f"{path}: not a kraken PP-OCRv6 recognition model")
    prefix, meta = hit
    net = build_network(meta["variant"], int(meta["num_classes"]))
    state = {k[len(prefix) + 4 :]: v for k, v in load_file(str(path)).items() if k.startswith(prefix + ".nn.")}
    net.load_state_dict(state, strict=True)
    net.eval()
    known = {"_kraken_min_version", "_tasks", "_model", "variant", "num_classes", "height", "codec"}
    return PPModel(
        net,
        meta["variant"],
        int(meta["height"]),
        {k: list(v) for k, v in meta["codec"].items()},
        {k: v for k, v in meta.items() if k not in known},
    )
