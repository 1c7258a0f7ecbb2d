"""Render synthetic text lines (typewriter and handwriting fonts) for the synthetic-data experiment.

    python bench/synthetic_lines.py GT_DIR... -o OUT --fonts typewriter,courier --lines 1500 [--seed 0]

Texts are the transcriptions of the given ground truth (so the language and charset match the
real data; no validation document should be passed). Each line is drawn in a random font at a
random size, on paper-coloured background, blurred and noised, written as OUT/NNNNN.png, and
compiled with its baseline and boundary into OUT.arrow by `htr.train.build_dataset` (Kraken's
baseline dataset type, so it mixes with the real training data).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FONTS = {  # Debian font packages (see sample_images/make_samples.py for licences)
    "typewriter": "/usr/share/fonts/truetype/gnutypewriter/GNUTypewriter.ttf",
    "courier": "/usr/share/fonts/opentype/courier-prime/Courier Prime.otf",
    "ecolier": "/usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf",
    "joscelyn": "/usr/share/fonts/opentype/joscelyn/Joscelyn-Regular.otf",
    "dancing": "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
}


def render(text: str, font_path: str, rng: random.Random) -> tuple[Image.Image, int]:
    """The line image and the y of its baseline."""
    size = rng.randint(34, 48)
    font = ImageFont.truetype(font_path, size)
    x0, y0, x1, y1 = font.getbbox(text)
    pad = rng.randint(8, 20)
    paper = rng.randint(200, 245)
    ink = rng.randint(10, 80)
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), paper)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=font, fill=ink, anchor="la")
    baseline = pad - y0 + font.getmetrics()[0]
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.0)))
    arr = np.asarray(img).astype(np.float32)
    arr += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 10), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), min(baseline, img.height - 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--fonts", default="typewriter,courier")
    ap.add_argument("--lines", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from alto.gt import find_gt_files, read_gt
    from htr.train import usable

    texts = [ln.text for f in find_gt_files(args.gt) for ln in read_gt(f).lines if usable(ln.text)]
    fonts = [FONTS[k] for k in args.fonts.split(",")]
    rng = random.Random(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    from alto.gt import GTLine, GTPage
    from htr.train import build_dataset

    pages = []
    for i in range(args.lines):
        text = rng.choice(texts)
        img, base = render(text, rng.choice(fonts), rng)
        p = out / f"{i:05d}.png"
        img.save(p)
        w, h = img.size
        line = GTLine(
            f"l{i}",
            (0, 0, w, h),
            text=text,
            baseline=((0, base), (w - 1, base)),
            polygon=((0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)),
        )
        pages.append(GTPage(p.with_suffix(".xml"), "alto", w, h, (line,), file_name=p.name, image_path=p))
    summary = build_dataset(pages, Path(str(out) + ".arrow"))
    print(f"{summary.lines} lines -> {out}.arrow")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
