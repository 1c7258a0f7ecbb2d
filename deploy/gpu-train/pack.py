"""Build the bundle `train_gpu.sh` needs on a bare GPU machine: wheels, a compact line dataset, a base model.

    python deploy/gpu-train/pack.py GT... -o BUNDLE [--base MODEL] [--max-mb 60]

Lines are cut from the ground truth as recognition cuts them and stored as JPEG (quality lowered until
the dataset fits `--max-mb`). Wheels: kraken (its network code) and safetensors, without dependencies,
for the GPU machine's Python (default 3.12, x86_64).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WHEELS = ("kraken==7.1.1", "safetensors==0.7.0")


def fetch_wheels(folder: Path, python_version: str, platform_tag: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for req in WHEELS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                python_version,
                "--platform",
                platform_tag,
                "-d",
                str(folder),
                req,
            ],
            check=True,
        )
    return sorted(folder.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    from alto.gt import find_gt_files, read_gt
    from htr import linedata
    from htr.models import resolve
    from htr.train import default_validation_documents, prepare_lines

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt", nargs="+")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--base", default="default", help="model to fine-tune (manifest name or PP-OCRv6 file)")
    ap.add_argument(
        "--val-docs", nargs="*", help="validation documents (default: the base's manifest entry, else one per dataset)"
    )
    ap.add_argument("--max-mb", type=float, default=60.0)
    ap.add_argument("--max-lines", type=int, default=0, help="keep only this many lines (dry runs)")
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--platform", default="manylinux2014_x86_64")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--work", type=Path, default=REPO / ".train" / "lines")
    a = ap.parse_args(argv)

    out = a.output
    out.mkdir(parents=True, exist_ok=True)
    info = resolve(a.base)
    entry = (
        json.loads((Path(info.path).parent / "manifest.json").read_text()).get("models", {}).get(a.base, {})
        if (Path(info.path).parent / "manifest.json").is_file()
        else {}
    )
    val_docs = (
        a.val_docs
        or [Path(d).name for d in entry.get("validation_data", [])]
        or sorted(Path(d).name for d in default_validation_documents([read_gt(f) for f in find_gt_files(a.gt)]))
    )
    lines = linedata.load(prepare_lines(a.gt, a.work))
    if a.max_lines:
        train, val = lines.split(val_docs)
        keep_t = list(range(min(a.max_lines, len(train))))
        keep_v = list(range(min(max(8, a.max_lines // 4), len(val))))
        lines = linedata.LineSet(
            lines.height,
            train.subset(keep_t).samples + val.subset(keep_v).samples,
            train.subset(keep_t).images + val.subset(keep_v).images,
        )
    target = out / "lines.npz"
    for quality in (90, 85, 80, 75, 70, 60, 50):
        linedata.save(lines, target, "jpeg", quality)
        if target.stat().st_size <= a.max_mb * 1e6:
            break
    else:
        raise SystemExit(f"{target}: {target.stat().st_size / 1e6:.1f} MB even at JPEG quality 50")
    shutil.copyfile(info.path, out / "base.safetensors")
    wheels = fetch_wheels(out / "wheels", a.python_version, a.platform)
    bundle = {
        "lines": target.name,
        "lines_jpeg_quality": quality,
        "line_count": len(lines),
        "base": "base.safetensors",
        "base_name": a.base,
        "base_sha256": info.sha256,
        "validation_documents": val_docs,
        "recalibrate_bn": True,
        "settings": {"batch_size": a.batch_size, "lr": a.lr, "warmup": 200, "val_lines": 600},
        "wheels": [w.name for w in wheels],
    }
    (out / "bundle.json").write_text(json.dumps(bundle, indent=1, ensure_ascii=False))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {len(lines)} lines (JPEG q{quality}), base {a.base}, {len(wheels)} wheels, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
