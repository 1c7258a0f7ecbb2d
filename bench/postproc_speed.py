"""Segmentation post-processing, Kraken's against htr.fastseg, on the same network output of real pages.

For each page (bench/run_bench.py's DEFAULT_PAGES, from ../shared/gt): the BLLA network runs once
(`htr.segment.network_output`, Kraken's own forward, one torch thread); then Kraken's post-processing
(kraken.lib.vgsl.spred `vec_regions` + `vec_lines`, what `SegmentationTaskModel.predict` runs) and htr.fastseg's
(`regions`, `baselines`, `features`, `polygons`) each run on that output. CPU seconds (`time.process_time`:
robust to other jobs on a shared machine) per step, and whether both give the same regions, baselines and
polygons. `--profile DIR` also writes a cProfile of each engine's post-processing of the first page.
Writes the "postproc" entry of bench/results.json.

    PYTHONPATH=$PWD .venv/bin/python bench/postproc_speed.py [--pages N] [--profile DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import DEFAULT_PAGES  # noqa: E402


def cpu(fn, *args, **kwargs):
    """(result, CPU seconds) of one call."""
    t = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - t


def kraken_post(net_out: dict) -> tuple[dict, list]:
    """Kraken's post-processing, as `VGSLSegmentationInference._segmentation_pred` calls it (network size)."""
    from kraken.lib.segmentation import scale_regions
    from kraken.lib.vgsl import spred

    rets = dict(net_out, bounding_regions=None)
    regions = spred.vec_regions(**rets)
    net_regions = scale_regions([r.boundary for rs in regions.values() for r in rs], 1 / rets["scale"])
    lines = spred.vec_lines(**rets, regions=net_regions, text_direction="horizontal-lr", topline=False)
    return regions, lines


def fast_post(net_out: dict) -> tuple[dict, dict]:
    """htr.fastseg's post-processing, step by step: (results at network size, CPU seconds per step)."""
    import shapely.geometry as geom
    from kraken.lib.segmentation import is_in_region, scale_regions

    from htr import fastseg

    heat, cls_map = net_out["heatmap"], net_out["cls_map"]
    steps: dict[str, float] = {}
    regions: dict[str, list] = {}
    t = time.process_time()
    for rtype, idx in cls_map["regions"].items():
        regions[rtype] = fastseg.regions(heat[idx])
    steps["regions"] = time.process_time() - t
    start, end = cls_map["aux"]["_start_separator"], cls_map["aux"]["_end_separator"]
    idx = next(iter(cls_map["baselines"].values()))
    baselines, steps["baselines"] = cpu(fastseg.baselines, heat[(start, end, idx), :, :])
    # the regions back at network size after Kraken's rounding to the page, as htr.segment does
    net_regions = scale_regions(
        scale_regions([r for rs in regions.values() for r in rs], net_out["scale"]), 1 / net_out["scale"]
    )
    shapes = [geom.Polygon(r) for r in net_regions]
    holding = [
        [net_regions[k] for k, s in enumerate(shapes) if is_in_region(geom.LineString(bl), s)] for bl in baselines
    ]
    feats, steps["features"] = cpu(fastseg.features, net_out["scal_im"])
    polygons, steps["polygons"] = cpu(fastseg.polygons, baselines, feats, holding)
    return {"regions": regions, "baselines": baselines, "polygons": polygons}, steps


def same_as_kraken(fast: dict, k_regions: dict, k_lines: list, scale) -> dict:
    """Do fastseg's results, scaled to the page as Kraken scales its own, equal Kraken's?"""
    from kraken.lib.segmentation import scale_polygonal_lines, scale_regions

    regions_same = all(
        scale_regions(fast["regions"][t], scale) == [r.boundary for r in k_regions[t]] for t in k_regions
    )
    kept = [(bl, p) for bl, p in zip(fast["baselines"], fast["polygons"]) if p is not None]
    ours = scale_polygonal_lines(kept, scale)
    theirs = [(ln["baseline"], ln["boundary"]) for ln in k_lines]
    return {
        "regions_same": regions_same,
        "lines": [len(ours), len(theirs)],
        "baselines_same": [bl for bl, _ in ours] == [bl for bl, _ in theirs],
        "polygons_same": sum(a == b for a, b in zip(ours, theirs)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=len(DEFAULT_PAGES), help="the first N of DEFAULT_PAGES")
    ap.add_argument("--gt", default=str(ROOT.parent / "shared" / "gt"))
    ap.add_argument("--profile", metavar="DIR", help="write kraken.prof and fast.prof of the first page here")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()

    import torch
    from PIL import Image

    from htr import segment
    from htr.config import SegmentSettings

    torch.set_num_threads(1)
    gt = Path(args.gt)
    if not gt.is_dir():
        print(f"postproc_speed: ground truth missing at {gt}", file=sys.stderr)
        return 2
    settings = SegmentSettings()
    segment.load(settings)  # the model load is not the forward's
    rows = []
    for n, rel in enumerate(DEFAULT_PAGES[: args.pages]):
        image = Image.open(gt / rel)
        image = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        net_out, forward = cpu(segment.network_output, image, settings)
        (k_regions, k_lines), kraken_cpu = cpu(kraken_post, net_out)
        fast, steps = fast_post(net_out)
        if args.profile and n == 0:
            prof = Path(args.profile)
            prof.mkdir(parents=True, exist_ok=True)
            cProfile.runctx("kraken_post(net_out)", globals(), {"net_out": net_out}, str(prof / "kraken.prof"))
            cProfile.runctx("fast_post(net_out)", globals(), {"net_out": net_out}, str(prof / "fast.prof"))
        row = {
            "page": rel,
            "network_size": list(net_out["heatmap"].shape[1:]),
            "forward_cpu_s": round(forward, 2),
            "kraken_cpu_s": round(kraken_cpu, 2),
            "fast_cpu_s": round(sum(steps.values()), 2),
            "fast_steps_cpu_s": {k: round(v, 3) for k, v in steps.items()},
            **same_as_kraken(fast, k_regions, k_lines, net_out["scale"]),
        }
        rows.append(row)
        print(
            f"{Path(rel).name:<40} lines {row['lines'][1]:>3}  forward {forward:5.2f}  kraken {kraken_cpu:5.2f}  "
            f"fast {row['fast_cpu_s']:5.2f}  x{kraken_cpu / max(row['fast_cpu_s'], 1e-9):4.1f}  "
            f"same: regions {row['regions_same']} baselines {row['baselines_same']} "
            f"polygons {row['polygons_same']}/{row['lines'][1]}",
            flush=True,
        )
    total = {k: round(sum(r[k] for r in rows), 2) for k in ("forward_cpu_s", "kraken_cpu_s", "fast_cpu_s")}
    summary = {
        "pages": len(rows),
        "lines": sum(r["lines"][1] for r in rows),
        "polygons_same": sum(r["polygons_same"] for r in rows),
        "all_baselines_same": all(r["baselines_same"] for r in rows),
        "all_regions_same": all(r["regions_same"] for r in rows),
        "cpu_s": total,
        "postproc_speedup": round(total["kraken_cpu_s"] / total["fast_cpu_s"], 2),
        "segmentation_speedup": round(
            (total["forward_cpu_s"] + total["kraken_cpu_s"]) / (total["forward_cpu_s"] + total["fast_cpu_s"]), 2
        ),
    }
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    old["postproc"] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary, "pages": rows}
    out.write_text(json.dumps(old, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
