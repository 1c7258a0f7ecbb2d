"""Checks before a run starts, in well under a second: the output folder, free space, models, device.

Each failed check raises an HTRError with one line naming what is wrong (the command exits 2);
nothing here imports Prefect, and torch only when a GPU device is asked for.

Space per page, measured (`htr enrich --segmentation-from alto`, a 78-line register page of
../shared/gt): ALTO 75 KB, thumbnail 48 KB, index rows about 45 KB, text and marker 2 KB, so
about 170 KB; PAGE_BYTES budgets three times that for dense pages. A page whose source is not
a plain JPEG/PNG (TIFF, PDF, JPEG 2000...) also holds its normalised PNG in OUT/.work while a
worker reads it: up to WORK_BYTES for a 300-dpi A3 scan, once per worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from htr.atomic import TMP_MARK
from htr.config import RunSettings
from htr.errors import ConfigError, DeviceError, DiskFull, ModelError, OutputError, is_disk_full

MB = 2**20
PAGE_BYTES = 512 * 1024
WORK_BYTES = 64 * MB
MIN_FREE_BYTES = 8 * MB  # run.json, report.html, the index and one page: below this nothing useful can be written


def check_output(out: str | Path) -> Path:
    """OUT is (or can be made) a writable folder with some free space; returns it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError("output is not a folder", path=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".preflight{TMP_MARK}", dir=out)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull("no space left on the output's disk", path=str(out)) from None
        raise OutputError(f"output folder is not writable: {e.strerror or e}", path=str(out)) from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise DiskFull(
            f"only {free / MB:.1f} MB free on the output's disk; at least {MIN_FREE_BYTES // MB} MB needed",
            path=str(out),
        )
    return out


def space_warning(out: str | Path, pages: int, workers: int, free: int | None = None) -> str | None:
    """A one-line warning when the free space looks short for `pages` pages (None when it looks enough)."""
    free = shutil.disk_usage(out).free if free is None else free
    need = pages * PAGE_BYTES + max(1, workers) * WORK_BYTES
    if pages and free < need:
        return (
            f"{out}: only {free / MB:.0f} MB free on the output's disk, about {need / MB:.0f} MB may be needed "
            f"for {pages} page(s) (~{PAGE_BYTES / MB:.1f} MB each): pages will fail if it fills up"
        )
    return None


def check_models(settings: RunSettings) -> None:
    """The segmentation and recognition model files exist and their headers read (ModelError)."""
    from htr import segment
    from htr.models import resolve

    seg = segment.model_path(settings.segment)
    _check_file(seg, "segmentation model")
    rec = Path(resolve(settings.recognize.model).path)
    _check_file(rec, "recognition model")
    if rec.suffix == ".safetensors":
        _check_safetensors(rec)


def _check_file(path: Path, what: str) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise ModelError(f"cannot read {what}: {e.strerror or e}", path=str(path)) from None
    if not head:
        raise ModelError(f"{what} file is empty", path=str(path))


def _check_safetensors(path: Path) -> None:
    """The header parses and every tensor lies inside the file (what a truncated or garbage file breaks)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
    except Exception as e:  # safetensors raises its own types for every kind of damage
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ModelError(f"not a loadable .safetensors model: {reason}", path=str(path)) from None
    if not names:
        raise ModelError("not a loadable .safetensors model: it holds no tensor", path=str(path))
    if "kraken_meta" not in meta:
        raise ModelError("not a Kraken model: no kraken_meta in the .safetensors metadata", path=str(path))


def check_device(device: str) -> None:
    """`device` exists here: cpu always; cuda[:N] only with a CUDA device torch can use; mps on Apple GPUs."""
    if device == "cpu":
        return
    if device.startswith("cuda"):
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise ConfigError(f"--device {device}: expected cuda or cuda:N")
        if os.name == "posix" and not any(
            os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
        ):
            raise DeviceError(f"--device {device}: no GPU on this machine (no NVIDIA/ROCm device); use --device cpu")
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device}: torch cannot use a GPU here (torch {torch.__version__}, "
                "CUDA not available); use --device cpu"
            )
        n = torch.cuda.device_count()
        if index and int(index) >= n:
            raise DeviceError(f"--device {device}: this machine has {n} GPU(s) (cuda:0..cuda:{n - 1})")
        return
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise DeviceError("--device mps: no Apple GPU (MPS) available here; use --device cpu")
        return
    raise ConfigError(f"--device {device}: expected cpu, cuda, cuda:N or mps")


def check(out: str | Path, settings: RunSettings) -> None:
    """Every check, cheapest first; raises on the first that fails."""
    check_output(out)
    check_models(settings)
    check_device(settings.device)
