"""Degraded copies of ground-truth pages, with their ground truth moved along (reproducible with --seed).

    python bench/degrade.py GT_FILE_OR_DIR... -o OUT [--seed 0] [--kinds skew,rot90,...]

For every page and kind, writes OUT/<kind>/<dataset>/<document>/<page>.png and an ALTO 4.4
ground-truth file next to it whose coordinates are those of the degraded image, so
`htr evaluate OUT/<kind> --pred RUN` scores a run on it like on the real pages.

Kinds: skew (rotated 2-8 degrees either way), rot90 (90 or 270), rot180, border (dark scanner
borders), contrast (faded ink and uneven lighting), noise (sensor noise and specks), double (two
pages of the same document side by side, as one double-page scan).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alto.gt import GTPage, find_gt_files, read_gt  # noqa: E402
from alto.writer import build_alto, write_alto  # noqa: E402
from htr.preprocess import Transform, rotation, warp  # noqa: E402
from htr.types import Line, LineText, PageImage, PageRef, PageSegmentation, PageText  # noqa: E402

KINDS = ("skew", "rot90", "rot180", "border", "contrast", "noise", "double")


def _paper(gray: np.ndarray) -> int:
    return int(np.percentile(gray, 90))


def _forward(back: Transform) -> Transform:
    """Degradations are built as maps from the new image back to the page; GT needs the way forward."""
    return back.inverse()


def skew(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, Transform, dict]:
    return skew_by(img, rng.uniform(2, 8) * rng.choice((-1, 1)))


def skew_by(img: np.ndarray, angle: float) -> tuple[np.ndarray, Transform, dict]:
    """The page turned `angle` degrees counter-clockwise on a larger canvas of paper colour."""
    back, w, h = rotation(angle, img.shape[1], img.shape[0])
    fill = _paper(img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    out = warp(img, back, w, h, border=(fill, fill, fill) if img.ndim == 3 else fill)
    return out, _forward(back), {"angle": round(angle, 2)}


def quarter(img: np.ndarray, turn: int) -> tuple[np.ndarray, Transform, dict]:
    back, _, _ = rotation(turn, img.shape[1], img.shape[0])
    return np.ascontiguousarray(np.rot90(img, turn // 90)), _forward(back), {"turn": turn}


def border(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, Transform, dict]:
    h, w = img.shape[:2]
    t, b = int(h * rng.uniform(0.03, 0.08)), int(h * rng.uniform(0.03, 0.08))
    left, r = int(w * rng.uniform(0.03, 0.08)), int(w * rng.uniform(0.03, 0.08))
    shape = (h + t + b, w + left + r) + img.shape[2:]
    nrng = np.random.default_rng(rng.randrange(2**32))
    out = np.clip(nrng.normal(rng.uniform(20, 50), 8, shape), 0, 255).astype(np.uint8)
    out[t : t + h, left : left + w] = img
    return out, Transform((1, 0, left, 0, 1, t)), {"borders": [left, t, r, b]}


def contrast(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, Transform, dict]:
    h, w = img.shape[:2]
    keep = rng.uniform(0.25, 0.4)  # ink keeps this share of its darkness
    f = img.astype(np.float32)
    f = 255 - (255 - f) * keep
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    light = 1.0 - 0.45 * np.sqrt(((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2)
    f = f * (light[..., None] if img.ndim == 3 else light)
    return np.clip(f, 0, 255).astype(np.uint8), Transform(), {"ink_kept": round(keep, 2)}


def noise(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, Transform, dict]:
    nrng = np.random.default_rng(rng.randrange(2**32))
    sigma = rng.uniform(15, 25)
    f = img.astype(np.float32) + nrng.normal(0, sigma, img.shape)
    specks = nrng.random(img.shape[:2]) < 0.002
    f[specks] = 0
    return np.clip(f, 0, 255).astype(np.uint8), Transform(), {"sigma": round(sigma, 1)}


def double(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Transform, Transform, dict]:
    """Two pages side by side on one canvas (tops aligned); maps of each page into the canvas."""
    if a.ndim != b.ndim:
        a, b = (x if x.ndim == 3 else cv2.cvtColor(x, cv2.COLOR_GRAY2RGB) for x in (a, b))
    h = max(a.shape[0], b.shape[0])
    fill = _paper(a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY))
    out = np.full((h, a.shape[1] + b.shape[1]) + a.shape[2:], fill, dtype=np.uint8)
    out[: a.shape[0], : a.shape[1]] = a
    out[: b.shape[0], a.shape[1] :] = b
    return out, Transform(), Transform((1, 0, a.shape[1], 0, 1, 0)), {"left_width": a.shape[1]}


def _moved_lines(page: GTPage, t: Transform, w: int, h: int, prefix: str = "") -> list[tuple[Line, str]]:
    out = []
    for ln in page.lines:
        base = t.points(ln.baseline, w, h) if ln.baseline else ()
        poly = t.points(ln.polygon, w, h) if ln.polygon else ()
        if len(base) < 2 and len(poly) < 3:
            continue
        out.append((Line(f"{prefix}{ln.id}", base, poly), ln.text))
    return out


def write_gt(target: Path, img: np.ndarray, lines: list[tuple[Line, str]]) -> None:
    """The degraded image (PNG) and its ground truth ALTO 4.4 (lines and text, no words)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    png = target.with_suffix(".png")
    Image.fromarray(img).save(png)
    h, w = img.shape[:2]
    seg = PageSegmentation(w, h, (), tuple(ln for ln, _ in lines))
    text = PageText(tuple(LineText(ln.id, t, 1.0) for ln, t in lines))
    page = PageImage(PageRef(png.stem, str(png)), str(png), w, h)
    write_alto(target.with_suffix(".xml"), build_alto(page, seg, text, keep_line_ids=True))


def _rel(page: GTPage) -> Path:
    """<dataset>/<document> of a GT page (its two innermost folders)."""
    return Path(*page.xml_path.resolve().parent.parts[-2:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS))
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    out = Path(args.output)
    pages = [read_gt(f) for f in sorted(find_gt_files(args.gt))]
    for kind in kinds:
        rng = random.Random(f"{args.seed}-{kind}")
        if kind == "double":
            by_doc: dict[Path, list[GTPage]] = {}
            for p in pages:
                by_doc.setdefault(p.xml_path.parent, []).append(p)
            for doc, ps in by_doc.items():
                for a, b in zip(ps[0::2], ps[1::2]):
                    ia, ib = (np.asarray(Image.open(p.image_path).convert("RGB")) for p in (a, b))
                    img, ta, tb, _ = double(ia, ib)
                    h, w = img.shape[:2]
                    lines = _moved_lines(a, ta, w, h, "L_") + _moved_lines(b, tb, w, h, "R_")
                    name = f"{a.image_path.stem}+{b.image_path.stem}"
                    write_gt(out / kind / _rel(a) / name, img, lines)
            continue
        for p in pages:
            img = np.asarray(Image.open(p.image_path).convert("RGB"))
            if kind == "rot90":
                img2, t, _ = quarter(img, rng.choice((90, 270)))
            elif kind == "rot180":
                img2, t, _ = quarter(img, 180)
            else:
                img2, t, _ = {"skew": skew, "border": border, "contrast": contrast, "noise": noise}[kind](img, rng)
            h, w = img2.shape[:2]
            write_gt(out / kind / _rel(p) / p.image_path.stem, img2, _moved_lines(p, t, w, h))
        print(f"{kind}: {len(pages)} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
