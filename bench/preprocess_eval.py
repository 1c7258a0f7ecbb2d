"""Measure each preprocessing step end to end: CER and line recall on real and degraded GT pages.

    python bench/preprocess_eval.py GT_XML... -o WORK [--workers 2] [--sets real,skew,...]

Degrades the given ground-truth pages with bench/degrade.py (seed 0), then for every set and
preprocessing configuration runs the real pipeline (`htr.pipeline.process_page`: preprocess ->
segment -> recognise -> ALTO in original coordinates) and scores the ALTO with `htr evaluate`'s
`evaluate_predictions`. Writes WORK/preprocess_eval.json, prints a Markdown table, and stores
the summary under "preprocess" in bench/results.json (with --results).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# set -> configurations measured on it (each a --preprocess value)
# Kept in the results, not re-run: "geometry" = orient,deskew,crop,split (first candidate profile,
# deskew from 1 degree), "deskew-1deg" (the deskew step turning pages from 1 degree),
# "geometry+flatten" = deskew,split,flatten,denoise (second candidate; not measured on noise/double),
# "geometry+denoise" = deskew,split,denoise (third candidate; not measured on noise/double).
PLAN: dict[str, tuple[str, ...]] = {
    "real": (
        "none",
        "orient",
        "deskew-1deg",
        "deskew",
        "crop",
        "split",
        "flatten",
        "clahe",
        "denoise",
        "binarize",
        "geometry",
        "geometry+flatten",
        "geometry+denoise",
        "default",
    ),
    "skew": ("none", "deskew-1deg", "deskew", "geometry", "geometry+flatten", "geometry+denoise", "default"),
    "rot90": ("none", "orient", "geometry", "geometry+flatten", "geometry+denoise", "default"),
    "rot180": ("none", "orient", "geometry", "geometry+flatten", "geometry+denoise", "default"),
    "border": ("none", "crop", "geometry", "geometry+flatten", "geometry+denoise", "default"),
    "contrast": ("none", "flatten", "clahe", "geometry", "geometry+flatten", "geometry+denoise", "default"),
    "noise": ("none", "denoise", "geometry", "default"),
    "double": ("none", "split", "geometry", "default"),
}
HISTORICAL = {"deskew-1deg", "geometry", "geometry+flatten", "geometry+denoise"}


def _settings(config: str, model: str):
    from htr.config import make_settings

    return make_settings(preprocess={"steps": config}, recognize={"model": model}, entities=False, workers=1)


def _one(args: tuple[str, str, str, str]) -> dict:
    """Process one page in a worker (models cached per process); returns its result dict."""
    import torch

    torch.set_num_threads(1)
    image, out, config, model = args
    from htr import images, pipeline

    settings = _settings(config, model)
    refs, _ = images.discover([image])
    models = pipeline.resolve_models(settings)
    res = pipeline.process_page(refs[0], Path(out), settings, models, "measure")
    return res.to_dict()


def run_config(gt_files: list[Path], out: Path, config: str, model: str, pool: ProcessPoolExecutor) -> dict:
    from alto.gt import read_gt
    from htr.evaluate import evaluate_predictions

    out.mkdir(parents=True, exist_ok=True)
    pages = [read_gt(f) for f in gt_files]
    jobs = [(str(p.image_path), str(out), config, model) for p in pages]
    t0 = time.perf_counter()
    results = list(pool.map(_one, jobs))
    wall = time.perf_counter() - t0
    failed = [r for r in results if r["status"] != "done"]
    ev = evaluate_predictions(gt_files, out, gt_pages=pages).to_dict()
    o = ev["overall"]
    tm = [r["timings"] for r in results if r["status"] == "done"]
    mean = lambda k: round(statistics.fmean(t.get(k, 0.0) for t in tm), 3) if tm else None  # noqa: E731
    return {
        "config": config,
        "pages": len(pages),
        "failed": [r["error"] for r in failed],
        "cer": o.get("cer"),
        "wer": o.get("wer"),
        "line_recall": o.get("line_recall"),
        "line_precision": o.get("line_precision"),
        "s_per_page": {
            "preprocess": mean("preprocess"),
            "segment": mean("segment"),
            "recognize": mean("recognize"),
            "total": mean("total"),
        },
        "preprocess_info": [r.get("preprocess") for r in results],
        "wall_s": round(wall, 1),
    }


def large_page(megapixels: float = 250.0, steps: str = "deskew,crop,split,flatten,denoise") -> dict:
    """Peak memory and time of preprocessing one synthetic scan of `megapixels` (run in a child process)."""
    import subprocess

    code = f"""
import json, resource, time, math
import numpy as np, cv2
from PIL import Image
from htr import preprocess as P
h = int(math.sqrt({megapixels} * 1e6 * 1.33)); w = int({megapixels} * 1e6 / h)
img = np.full((h, w, 3), 235, np.uint8)
step, word = max(8, h // 60), max(6, h // 120)
for y in range(h // 10, h - h // 10, step):  # lines of dark 'words', turned 3 degrees below
    for x in range(w // 10, w - w // 10 - word, 2 * word):
        img[y:y + max(2, h // 200), x:x + word] = 40
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
back, nw, nh = P.rotation(3.0, w, h)
img = P.warp(img, back, nw, nh, border=(235, 235, 235))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
pre = P.run(Image.fromarray(img), P.parse_steps("{steps}"))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"megapixels": round(nw * nh / 1e6, 1), "steps": "{steps}", "seconds": round(dt, 1),
                  "peak_rss_mb": round(peak / 1024), "rss_before_mb": round(before / 1024),
                  "page_rgb_mb": round(nw * nh * 3 / 2**20), "skew": pre.info.get("deskew", {{}}).get("angle")}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    rows = [
        "| set | preprocess | CER | line recall | preprocess s/page | segment s/page | pages |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for set_name, configs in results.items():
        for r in configs:
            cer = f"{r['cer']:.1%}" if r["cer"] is not None else "–"
            rec = f"{r['line_recall']:.1%}" if r["line_recall"] is not None else "–"
            s = r["s_per_page"]
            rows.append(
                f"| {set_name} | {r['config']} | {cer} | {rec} | {s['preprocess']} | {s['segment']} | "
                f"{r['pages']}{' (' + str(len(r['failed'])) + ' failed)' if r['failed'] else ''} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt", nargs="+", help="ground-truth ALTO/PAGE files (or folders)")
    ap.add_argument("-o", "--work", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sets", default=",".join(PLAN))
    ap.add_argument("--configs", help="only these configurations (comma-separated)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--large", type=float, metavar="MP", help="only measure memory/time on one synthetic MP-megapixel scan"
    )
    ap.add_argument("--force", action="store_true", help="measure again what WORK/preprocess_eval.json already holds")
    ap.add_argument("--results", help="merge the summary into this JSON file (bench/results.json)")
    args = ap.parse_args(argv)

    from alto.gt import find_gt_files

    if args.large:
        r = large_page(args.large)
        print(json.dumps(r))
        if args.results:
            path = Path(args.results)
            data = json.loads(path.read_text()) if path.exists() else {}
            data.setdefault("preprocess", {})["large_page"] = r
            path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        return 0
    work = Path(args.work)
    gt_files = sorted(find_gt_files(args.gt))
    sets = [s for s in args.sets.split(",") if s]
    only = set(args.configs.split(",")) if args.configs else None
    degraded = work / "degraded"
    need = [s for s in sets if s != "real" and not (degraded / s).is_dir()]
    if need:
        from tests import degrade  # the degradations tests/test_preprocess.py checks

        degrade.main([*map(str, gt_files), "-o", str(degraded), "--seed", str(args.seed), "--kinds", ",".join(need)])
    out_json = work / "preprocess_eval.json"
    results: dict[str, list[dict]] = json.loads(out_json.read_text()) if out_json.exists() else {}
    with ProcessPoolExecutor(args.workers) as pool:
        for s in sets:
            files = gt_files if s == "real" else sorted(find_gt_files([degraded / s]))
            done = {r["config"]: r for r in results.get(s, [])}
            for config in PLAN[s]:
                if (only and config not in only) or (config in done and not args.force) or config in HISTORICAL:
                    continue
                r = run_config(files, work / "runs" / s / config, config, args.model, pool)
                done[config] = r
                results[s] = [done[c] for c in PLAN[s] if c in done]
                out_json.write_text(json.dumps(results, indent=1))
                print(
                    f"{s:9s} {config:9s} CER {r['cer']} recall {r['line_recall']} pre {r['s_per_page']['preprocess']}"
                    f" seg {r['s_per_page']['segment']} failed {len(r['failed'])}",
                    flush=True,
                )
    print(table(results))
    if args.results:
        path = Path(args.results)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["preprocess"] = {
            "pages": [str(f) for f in gt_files],
            "seed": args.seed,
            "model": args.model,
            "command": "python bench/preprocess_eval.py " + " ".join(sys.argv[1:]),
            "results": {
                s: [{k: v for k, v in r.items() if k != "preprocess_info"} for r in rs] for s, rs in results.items()
            },
        }
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
