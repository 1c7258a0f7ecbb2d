"""Model registry: `models/manifest.json`, sha256 verification, model cards."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core import hashing
from htr.errors import ModelError


def models_dir() -> Path:
    """`$HTR_MODELS_DIR`, else the repository's `models/` folder."""
    env = os.environ.get("HTR_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    """A recognition model resolved to a file on disk, with its verified hash."""

    name: str
    path: str
    sha256: str
    card: str | None = None
    doi: str | None = None


def file_sha256(path: str | Path) -> str:
    """`core.hashing.file_sha256`, cached per (path, size, mtime): a model is hashed once per process."""
    p = Path(path)
    st = p.stat()
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return hashing.file_sha256(path)  # size and mtime in the key: a changed file is hashed again


def manifest(directory: Path | None = None) -> dict:
    path = (directory or models_dir()) / "manifest.json"
    if not path.is_file():
        return {"models": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"invalid JSON: {e}", path=str(path)) from None


def resolve(name_or_path: str, directory: Path | None = None) -> ModelInfo:
    """A manifest name (e.g. `default`) or a path to a model file -> verified ModelInfo."""
    directory = directory or models_dir()
    entries = manifest(directory).get("models", {})
    if name_or_path in entries:
        entry = entries[name_or_path]
        path = directory / entry["file"]
        if not path.is_file():
            raise ModelError(f"model {name_or_path!r} listed in the manifest but its file is missing", path=str(path))
        digest = file_sha256(path)
        if entry.get("sha256") and digest != entry["sha256"]:
            raise ModelError(
                f"sha256 mismatch for model {name_or_path!r}: manifest says {entry['sha256'][:12]}…, file is {digest[:12]}…",
                path=str(path),
            )
        card = directory / entry["card"] if entry.get("card") else None
        return ModelInfo(name_or_path, str(path), digest, str(card) if card else None, entry.get("doi"))
    path = Path(name_or_path)
    if path.is_dir():  # models/NAME folder with a single model file
        files = sorted(list(path.glob("*.safetensors")) + list(path.glob("*.mlmodel")))
        if len(files) != 1:
            raise ModelError("folder must hold exactly one .safetensors or .mlmodel file", path=str(path))
        path = files[0]
    if path.is_file():
        return ModelInfo(path.stem, str(path), file_sha256(path))
    known = ", ".join(sorted(entries)) or "none"
    raise ModelError(
        f"no such model (not a file, not in {directory / 'manifest.json'}; known: {known})", path=name_or_path
    )
