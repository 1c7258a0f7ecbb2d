"""Segmentation height vs quality and CPU on real pages (docs/PERFORMANCE.md "Segmentation height").

One page of each sub-collection of ../shared/gt (the middle one, or the first with --pick first) is
segmented in-process at each `--seg-height` value, read by the recognition model and scored against its
ground truth (line recall at IoU >= 0.5, CER); segmentation CPU is `time.process_time`, one torch thread.

    PYTHONPATH=. .venv/bin/python bench/seg_height.py --pick mid --heights model,1400,1200,1000,auto
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pages(gt: Path, pick: str) -> list[Path]:
    from alto.gt import find_gt_files

    groups: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    for f in sorted(find_gt_files([gt])):
        groups[f.relative_to(gt).parts[:2]].append(f)
    return [fs[0] if pick == "first" else fs[len(fs) // 2] for _, fs in sorted(groups.items())]


def measure(f: Path, height: str, model) -> dict:
    from alto.gt import read_gt
    from alto.model import Page, TextLine
    from htr import recognize, segment
    from htr.config import RecognizeSettings, SegmentSettings
    from htr.evaluate import open_page_image, score_page

    gt = read_gt(f)
    im = open_page_image(gt)
    settings = SegmentSettings(height=None if height == "model" else height if height == "auto" else int(height))
    t = time.process_time()
    seg = segment.run(im, settings)
    seg_cpu = time.process_time() - t
    text = {lt.line_id: lt.text for lt in recognize.run(im, seg, model, RecognizeSettings()).lines}
    lines = tuple(
        TextLine(ln.id, (0, 0, 1, 1), text=text.get(ln.id, ""), polygon=ln.polygon, baseline=ln.baseline)
        for ln in seg.lines
    )
    score, _ = score_page(gt, Page(f, "alto", im.width, im.height, lines))
    return {
        "height": height,
        "seg_cpu_s": round(seg_cpu, 2),
        "gt_lines": score.gt_lines,
        "pred_lines": score.pred_lines,
        "detected": score.detected_lines,
        "char_edits": score.char_edits,
        "chars": score.chars,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", type=Path, default=ROOT.parent / "shared" / "gt")
    ap.add_argument("--pick", choices=["mid", "first"], default="mid")
    ap.add_argument("--heights", default="model,1400,1200,1000,auto")
    ap.add_argument("--pages", type=int, default=0, help="only the first N pages (0: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "seg_height.json")
    args = ap.parse_args()

    import torch

    from htr.models import resolve

    torch.set_num_threads(1)
    model = resolve("default")
    heights = args.heights.split(",")
    rows = []
    for f in pages(args.gt, args.pick)[: args.pages or None]:
        for h in heights:
            rows.append({"page": str(f.relative_to(args.gt)), **measure(f, h, model)})
            print(json.dumps(rows[-1]), flush=True)
    total = {}
    for h in heights:
        sel = [r for r in rows if r["height"] == h]
        total[h] = {
            "line_recall": round(sum(r["detected"] for r in sel) / max(1, sum(r["gt_lines"] for r in sel)), 4),
            "cer": round(sum(r["char_edits"] for r in sel) / max(1, sum(r["chars"] for r in sel)), 4),
            "seg_cpu_s": round(sum(r["seg_cpu_s"] for r in sel), 1),
        }
    args.out.write_text(json.dumps({"pick": args.pick, "pages": rows, "total": total}, indent=1))
    for h, t in total.items():
        print(f"{h:>6}: recall {t['line_recall']:.3f}  CER {t['cer']:.2%}  segmentation CPU {t['seg_cpu_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
