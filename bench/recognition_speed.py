"""Recognition speed of models on CPU, one worker, one torch thread: lines/s and lines per CPU-second.

    python bench/recognition_speed.py [--model default] [--model other.safetensors] [--pages N] [--results bench/results.json]

Lines come from ground-truth segmentations of the validation documents (no segmentation cost),
so the figure is the recogniser's own. Lines per CPU-second is the number to compare across runs
on a shared machine; wall-clock lines/s is given for reference. The CER on the same lines is
reported beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALIDATION = [
    "cremma-mss-19/lettre-boudreau-tessier",
    "lectaurep-repertoires/lectaurep-riant-4",
    "tapuscorpus/12148-btv1b53097347b",
]


def measure(model: str, pages, threads: int = 1) -> dict:
    import torch

    from htr.config import RecognizeSettings
    from htr.evaluate import evaluate_model
    from htr.models import resolve

    torch.set_num_threads(threads)
    info = resolve(model)
    settings = RecognizeSettings(model=model)
    evaluate_model(pages[:1], info, settings)  # load the model once, outside the timing
    w0, c0 = time.perf_counter(), time.process_time()
    result = evaluate_model(pages, info, settings).to_dict()["overall"]
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    lines = result["scored_lines"]
    return {
        "model": info.name,
        "sha256": info.sha256,
        "lines": lines,
        "chars": result["chars"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "lines_per_s": round(lines / wall, 2),
        "lines_per_cpu_s": round(lines / cpu, 2),
        "cer": result["cer"],
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model name or file (repeatable; default: default)")
    ap.add_argument("--gt", default=str(ROOT.parent / "shared" / "gt"))
    ap.add_argument("--pages", type=int, default=3, help="pages per validation document")
    ap.add_argument("--results", help="store under 'recognition_speed' in this JSON file")
    args = ap.parse_args(argv)

    from alto.gt import find_gt_files, read_gt

    pages = [read_gt(f) for d in VALIDATION for f in sorted(find_gt_files([Path(args.gt) / d]))[: args.pages]]
    rows = [measure(m, pages) for m in (args.model or ["default"])]
    for r in rows:
        print(
            f"{r['model']:>20}: {r['lines_per_s']:.1f} lines/s, {r['lines_per_cpu_s']:.1f} lines per CPU-s, "
            f"CER {r['cer']:.1%} on {r['lines']} lines"
        )
    if args.results:
        path = Path(args.results)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["recognition_speed"] = {
            "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "machine": platform.platform(),
            "command": "python bench/recognition_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "pages": [str(p.xml_path) for p in pages],
            "models": rows,
        }
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
