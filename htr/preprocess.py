"""Image preprocessing before segmentation: orientation, deskew, crop, double-page split, photometry.

Every step returns the new image(s) AND a `Transform` mapping the new image's pixel coordinates
back to the original image, so that everything written to ALTO stays in the original pixel space.

Geometric steps (orient, deskew, crop, split) are *estimated* on a downscaled grey copy
(`ESTIMATE_SIDE` pixels on the long side), composed into one affine map, and applied once at full
resolution (`apply`); photometric steps (flatten, clahe, denoise, binarize) then run on the
result in horizontal strips, so memory stays a small multiple of the page itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
from PIL import Image

from core.geometry import clamp, round_points
from htr.errors import ConfigError, PreprocessError
from htr.types import PART_SUFFIXES, Box, Line, LineText, PageSegmentation, PageText, Point, Region, Word

VERSION = "1"  # bump when a change here changes what a page's outputs contain (part of the resume key)
ESTIMATE_SIDE = 1600  # long side of the copy on which geometry is estimated
MAX_SKEW = 10.0  # degrees searched either way
# Below this, pages are left as they are: Kraken's baseline segmentation and line dewarping
# absorb small skews, and resampling costs more than it gains (measured on real pages: turning
# two registers skewed 1.7 and 1.9 degrees lowered line recall; docs/PREPROCESSING.md).
MIN_SKEW = 2.0
STRIP_ROWS = 2048  # rows per strip for photometric steps

GEOMETRIC = ("orient", "deskew", "crop", "split")
PHOTOMETRIC = ("flatten", "clahe", "denoise", "binarize")
STEPS = GEOMETRIC + PHOTOMETRIC

# Named profiles. `default` holds the steps measured to help (docs/PREPROCESSING.md).
PROFILES: dict[str, tuple[str, ...]] = {
    "none": (),
    "default": ("deskew", "split"),
    "geometry": ("orient", "deskew", "crop", "split"),
    "all": ("orient", "deskew", "crop", "split", "flatten", "clahe", "denoise"),
}


def parse_steps(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """`default`, `none`, `deskew,crop`, ... -> canonical ordered step tuple (ConfigError if unknown)."""
    if spec is None:
        return ()
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    steps: list[str] = []
    for item in items:
        if item in PROFILES:
            steps += PROFILES[item]
        elif item in STEPS:
            steps.append(item)
        else:
            raise ConfigError(
                f"unknown preprocessing step or profile {item!r}: "
                f"steps {', '.join(STEPS)}; profiles {', '.join(PROFILES)}"
            )
    return tuple(s for s in STEPS if s in steps)  # fixed order, no duplicates


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Transform:
    """Affine map from a processed image's pixel coordinates to the original image's.

    `m = (a, b, c, d, e, f)`: x_orig = a*x + b*y + c, y_orig = d*x + e*y + f.
    """

    m: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    @staticmethod
    def identity() -> Transform:
        return Transform()

    @staticmethod
    def from_matrix(mat: np.ndarray) -> Transform:
        a = np.asarray(mat, dtype=float)
        return Transform(tuple(float(v) for v in a[:2, :3].ravel()))  # type: ignore[arg-type]

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[*self.m[:3]], [*self.m[3:]], [0.0, 0.0, 1.0]])

    def then(self, inner: Transform) -> Transform:
        """The map for an image made from this one by a step whose own map back is `inner`."""
        return Transform.from_matrix(self.matrix @ inner.matrix)

    def inverse(self) -> Transform:
        return Transform.from_matrix(np.linalg.inv(self.matrix))

    @property
    def is_identity(self) -> bool:
        return np.allclose(self.m, Transform().m)

    def point(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.m
        return a * x + b * y + c, d * x + e * y + f

    def points(self, pts: Iterable[Sequence[float]], width: int, height: int) -> tuple[Point, ...]:
        """Map points and round them into the original page (`width` x `height`)."""
        return round_points((self.point(x, y) for x, y in pts), width, height)

    def box(self, box: Box, width: int, height: int) -> Box:
        """Map a box (x1/y1 exclusive) to the smallest original-space box holding its corners."""
        x0, y0, x1, y1 = box
        pts = [self.point(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        bx0 = clamp(int(math.floor(min(xs))), 0, width - 1)
        by0 = clamp(int(math.floor(min(ys))), 0, height - 1)
        return (
            bx0,
            by0,
            max(bx0 + 1, min(int(math.ceil(max(xs))), width)),
            max(by0 + 1, min(int(math.ceil(max(ys))), height)),
        )


def rotation(angle_deg: float, w: int, h: int) -> tuple[Transform, int, int]:
    """Turn a w x h image's content by `angle_deg` counter-clockwise (as displayed) on an enlarged canvas.

    Returns the map from the rotated canvas back to the source and the canvas size.
    """
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    nw = int(math.ceil(abs(w * c) + abs(h * s) - 1e-6))
    nh = int(math.ceil(abs(w * s) + abs(h * c) - 1e-6))
    if angle_deg % 90 == 0:  # exact quarter turns: no interpolation, integer sizes
        c, s = round(c), round(s)
        nw, nh = (w, h) if int(angle_deg) % 180 == 0 else (h, w)
    # canvas point (u, v) -> source: centre-relative rotation by +angle (image y points down)
    cx, cy, ncx, ncy = (w - 1) / 2, (h - 1) / 2, (nw - 1) / 2, (nh - 1) / 2
    back = Transform((c, -s, cx - c * ncx + s * ncy, s, c, cy - s * ncx - c * ncy))
    return back, nw, nh


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Part:
    """One output page of preprocessing: image, map back to the original, id suffix ('', '-L', '-R')."""

    image: Image.Image
    transform: Transform
    suffix: str = ""


@dataclass(frozen=True)
class Preprocessed:
    """Result of `run`: the part images and what was measured (angles, boxes, gutter, timings)."""

    parts: tuple[Part, ...]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    """Result of one step function: new image(s) and their maps back to the step's input."""

    images: tuple[np.ndarray, ...]
    transforms: tuple[Transform, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> np.ndarray:
        return self.images[0]

    @property
    def transform(self) -> Transform:
        return self.transforms[0]


# --------------------------------------------------------------------------- estimation helpers


def to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _small(gray: np.ndarray, side: int = ESTIMATE_SIDE) -> tuple[np.ndarray, float]:
    """Downscaled copy (area interpolation) and its scale factor (small / original)."""
    h, w = gray.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return gray, 1.0
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def ink_mask(gray: np.ndarray, remove_rules: bool = True) -> np.ndarray:
    """Binary mask (uint8 0/1) of dark strokes on the local background.

    With `remove_rules`, long thin shapes at any angle (ruled lines, table borders, paper and
    scanner edges) are removed: they would outweigh the text lines in every projection profile.
    """
    h, w = gray.shape
    block = max(15, (min(h, w) // 40) | 1)
    mask = cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 12)
    if remove_rules:
        for k in ((max(25, w // 12), 1), (1, max(25, h // 12))):  # axis-aligned rules, even broken ones
            rules = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, k))
            mask = cv2.subtract(mask, cv2.dilate(rules, np.ones((3, 3), np.uint8)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        bw, bh, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
        long_thin = (np.maximum(bw, bh) > 0.12 * max(h, w)) & (area < 0.05 * bw * bh)
        long_thin[0] = False
        if long_thin.any():
            mask[long_thin[labels]] = 0
    return mask


def _profile_score(ys: np.ndarray, xs: np.ndarray, angle_deg: float, height: int) -> float:
    """Sharpness of the horizontal projection profile of ink points seen at `angle_deg`."""
    t = math.radians(angle_deg)
    proj = ys * math.cos(t) - xs * math.sin(t)
    hist = np.bincount((proj - proj.min()).astype(np.int64), minlength=height)
    return float(np.square(np.diff(hist.astype(np.float64))).sum())


def _ink_points(mask: np.ndarray, limit: int = 300_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    if len(ys) > limit:
        pick = np.random.default_rng(seed).choice(len(ys), limit, replace=False)
        ys, xs = ys[pick], xs[pick]
    return ys.astype(np.float64), xs.astype(np.float64)


def estimate_skew(gray_small: np.ndarray, max_angle: float = MAX_SKEW) -> tuple[float, float]:
    """Skew angle in degrees (positive: lines rise to the right, i.e. counter-clockwise) and a confidence.

    Projection-profile search: coarse 0.5 degree steps over +-`max_angle`, then 0.05 degree steps.
    Confidence: how much sharper the best profile is than the median one (1.0 = no evidence).
    """
    mask = ink_mask(gray_small)
    ys, xs = _ink_points(mask)
    if len(ys) < 200:
        return 0.0, 1.0
    h = gray_small.shape[0] * 2 + gray_small.shape[1]
    # With image y pointing down, text rising to the right by `a` degrees has y = y0 - x tan(a):
    # the profile is sharpest when projecting on y*cos(a) + x*sin(a), i.e. _profile_score at -a.
    coarse = np.arange(-max_angle, max_angle + 1e-9, 0.5)
    scores = np.array([_profile_score(ys, xs, -a, h) for a in coarse])
    best = float(coarse[int(scores.argmax())])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    fscores = np.array([_profile_score(ys, xs, -a, h) for a in fine])
    angle = float(fine[int(fscores.argmax())])
    confidence = float(fscores.max() / max(np.median(scores), 1e-9))
    return round(angle, 2), round(confidence, 2)


def _spread(ys: np.ndarray, xs: np.ndarray, angle_deg: float, bin_px: int = 4) -> float:
    """Coefficient of variation of the projection profile (bins of `bin_px`) inside the ink's extent."""
    t = math.radians(angle_deg)
    proj = ys * math.cos(t) - xs * math.sin(t)
    lo, hi = np.percentile(proj, (2, 98))
    proj = proj[(proj >= lo) & (proj <= hi)]
    hist = np.bincount(((proj - lo) / bin_px).astype(np.int64)).astype(np.float64)
    return float(hist.var() / max(hist.mean() ** 2, 1e-9))


AMBIGUOUS_ASYMMETRY = 0.15  # below this, upright vs upside down is left to the recogniser's vote


def estimate_orientation(gray_small: np.ndarray, search: float = MAX_SKEW) -> tuple[int, dict[str, Any]]:
    """Quarter turns (0, 90, 180, 270, counter-clockwise) that make the text upright, and the evidence.

    Line geometry votes: text lines give a far more contrasted projection profile across them than
    along them (0/180 against 90/270); Latin script has more ink above the x-height band
    (ascenders, capitals, accents) than below it (descenders), which tells upright from upside
    down. That second cue is weak on some typescripts: `ambiguous` says so, and the pipeline then
    lets the recognition model's confidence decide between the two candidates.
    """
    mask = ink_mask(gray_small)
    ys, xs = _ink_points(mask)
    if len(ys) < 500:
        return 0, {"reason": "too little ink", "ambiguous": False}
    angles = np.arange(-search, search + 1e-9, 1.0)
    horiz = max(_spread(ys, xs, a) for a in angles)
    vert = max(_spread(xs, ys, a) for a in angles)
    turn = 0 if horiz >= vert else 90
    upright = mask if turn == 0 else np.ascontiguousarray(np.rot90(mask, 1))
    asym = ascender_asymmetry(upright)
    if asym < 0:
        turn += 180
    return turn % 360, {
        "lines_horizontal_vs_vertical": round(horiz / max(vert, 1e-9), 3),
        "ascender_asymmetry": round(asym, 3),
        "ambiguous": abs(asym) < AMBIGUOUS_ASYMMETRY,
    }


def ascender_asymmetry(mask: np.ndarray) -> float:
    """(ink above - ink below the x-height band) / total, summed over text lines; > 0 means upright."""
    skew, _ = estimate_skew((1 - mask).astype(np.uint8) * 255, max_angle=5.0) if mask.any() else (0.0, 1.0)
    if abs(skew) > 0.2:
        back, nw, nh = rotation(-skew, mask.shape[1], mask.shape[0])
        mask = warp(mask, back, nw, nh, border=0, nearest=True)
    prof = mask.sum(axis=1).astype(np.float64)
    if prof.max() <= 0:
        return 0.0
    smooth = np.convolve(prof, np.ones(3) / 3, mode="same")
    core = smooth >= 0.45 * _line_peak_level(smooth)
    above = below = 0.0
    rows = np.arange(len(prof))
    # each run of core rows is one line's x-height band; its neighbourhood holds ascenders / descenders
    edges = np.flatnonzero(np.diff(np.concatenate([[0], core.astype(np.int8), [0]])))
    bands = list(zip(edges[0::2], edges[1::2]))
    for i, (top, bottom) in enumerate(bands):
        height = bottom - top
        if height < 2:
            continue
        reach = max(2, int(height * 0.8))
        lo = max(bands[i - 1][1] if i else 0, top - reach)
        hi = min(bands[i + 1][0] if i + 1 < len(bands) else len(prof), bottom + reach)
        above += prof[(rows >= lo) & (rows < top)].sum()
        below += prof[(rows >= bottom) & (rows < hi)].sum()
    total = above + below
    return float((above - below) / total) if total else 0.0


def _line_peak_level(profile: np.ndarray) -> float:
    """A robust 'typical line' height of the profile: the 90th percentile of its non-empty rows."""
    nz = profile[profile > 0]
    return float(np.percentile(nz, 90)) if len(nz) else 0.0


def estimate_crop(gray_small: np.ndarray, dark_fraction: float = 0.6) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1) of the page inside dark scanner borders, on `gray_small`; None if no border.

    A border row/column is one where most pixels are darker than the Otsu threshold between the
    paper and the border; rows and columns are peeled from each edge while they are border.
    """
    h, w = gray_small.shape
    thr, _ = cv2.threshold(gray_small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = (gray_small < min(thr, 160)).astype(np.float32)
    row_dark = dark.mean(axis=1)
    col_dark = dark.mean(axis=0)

    def peel(values: np.ndarray) -> int:
        n = 0
        while n < len(values) and values[n] >= dark_fraction:
            n += 1
        return n

    top, bottom = peel(row_dark), peel(row_dark[::-1])
    left, right = peel(col_dark), peel(col_dark[::-1])
    if top + bottom >= h * 0.5 or left + right >= w * 0.5:
        return None  # a dark page, not a border: leave it alone
    if max(top, bottom, left, right) < 3:
        return None
    pad = 2  # keep a few pixels of border: edges of the paper are not text
    return max(0, left - pad), max(0, top - pad), min(w, w - right + pad), min(h, h - bottom + pad)


def estimate_gutter(gray_small: np.ndarray) -> tuple[int | None, dict[str, float]]:
    """Column of the gutter of a double-page scan on `gray_small`, or None for a single page.

    Only landscape images are candidates (two portrait pages side by side). The gutter is the
    emptiest column band in the middle fifth, and both halves must hold text; a gutter with a
    shadow is found the same way, since ink is measured against the local background.
    """
    h, w = gray_small.shape
    if w < h * 1.15:
        return None, {"aspect": round(w / h, 3)}
    mask = ink_mask(gray_small)
    col = mask.sum(axis=0).astype(np.float64)
    band = max(3, w // 50)
    smooth = np.convolve(col, np.ones(band) / band, mode="same")
    lo, hi = int(w * 0.4), int(w * 0.6)
    gutter = lo + int(smooth[lo:hi].argmin())
    left, right = smooth[int(w * 0.05) : int(w * 0.35)].mean(), smooth[int(w * 0.65) : int(w * 0.95)].mean()
    valley = smooth[gutter]
    info = {
        "aspect": round(w / h, 3),
        "valley": round(float(valley), 2),
        "left": round(float(left), 2),
        "right": round(float(right), 2),
    }
    if min(left, right) <= 0 or valley > 0.15 * min(left, right):
        return None, info
    return gutter, info


# --------------------------------------------------------------------------- applying


def warp(
    img: np.ndarray,
    back: Transform,
    width: int,
    height: int,
    *,
    border: int | tuple | None = None,
    nearest: bool = False,
) -> np.ndarray:
    """Resample `img` onto a `width` x `height` canvas whose pixel (x, y) comes from `back(x, y)`."""
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC) | cv2.WARP_INVERSE_MAP
    m = np.array([back.m[:3], back.m[3:]], dtype=np.float64)
    if border is None:
        return cv2.warpAffine(img, m, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(img, m, (width, height), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def _quarter_turn(img: np.ndarray, turn: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(img, turn // 90)) if turn % 360 else img


# One function per step: image in, image(s) and map(s) back to the input out.


def orient(img: np.ndarray) -> StepResult:
    """Turn the page by a multiple of 90 degrees so that its text is upright."""
    small, _ = _small(to_gray(img))
    turn, evidence = estimate_orientation(small)
    back, _, _ = rotation(turn, img.shape[1], img.shape[0])
    return StepResult((_quarter_turn(img, turn),), (back,), {"turn": turn, **evidence})


def deskew(img: np.ndarray) -> StepResult:
    """Rotate the page so that its lines are horizontal (canvas enlarged, corners filled by replication)."""
    small, _ = _small(to_gray(img))
    angle, conf = estimate_skew(small)
    if abs(angle) < MIN_SKEW:
        return StepResult((img,), (Transform(),), {"angle": angle, "confidence": conf})
    back, nw, nh = rotation(-angle, img.shape[1], img.shape[0])
    return StepResult((warp(img, back, nw, nh),), (back,), {"angle": angle, "confidence": conf})


def crop(img: np.ndarray) -> StepResult:
    """Cut dark scanner borders off."""
    small, scale = _small(to_gray(img))
    box = estimate_crop(small)
    if box is None:
        return StepResult((img,), (Transform(),), {"box": None})
    x0, y0, x1, y1 = _scale_box(box, scale, img.shape[1], img.shape[0])
    return StepResult((img[y0:y1, x0:x1],), (Transform((1, 0, x0, 0, 1, y0)),), {"box": [x0, y0, x1, y1]})


def split(img: np.ndarray) -> StepResult:
    """Cut a double-page scan at its gutter into a left and a right page."""
    small, scale = _small(to_gray(img))
    gutter, info = estimate_gutter(small)
    if gutter is None:
        return StepResult((img,), (Transform(),), {"gutter": None, **info})
    g = min(img.shape[1] - 1, max(1, round(gutter / scale)))
    return StepResult((img[:, :g], img[:, g:]), (Transform(), Transform((1, 0, g, 0, 1, 0))), {"gutter": g, **info})


def _scale_box(box: tuple[int, int, int, int], scale: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (
        max(0, int(x0 / scale)),
        max(0, int(y0 / scale)),
        min(w, int(math.ceil(x1 / scale))),
        min(h, int(math.ceil(y1 / scale))),
    )


def _by_strips(gray: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], margin: int) -> np.ndarray:
    """Apply a local filter in horizontal strips with `margin` rows of context (bounded memory)."""
    h = gray.shape[0]
    if h <= STRIP_ROWS + 2 * margin:
        return fn(gray)
    out = np.empty_like(gray)
    for top in range(0, h, STRIP_ROWS):
        a, b = max(0, top - margin), min(h, top + STRIP_ROWS + margin)
        res = fn(gray[a:b])
        out[top : min(h, top + STRIP_ROWS)] = res[top - a : top - a + min(STRIP_ROWS, h - top)]
    return out


def flatten(img: np.ndarray) -> StepResult:
    """Even out uneven lighting (divide by a smooth background estimate) and stretch contrast; grey out."""
    gray = to_gray(img)
    small, scale = _small(gray, 800)
    k = max(3, (max(small.shape) // 40) | 1)
    bg_small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bg_small = cv2.GaussianBlur(bg_small, (0, 0), k / 2)
    ratio = small.astype(np.float32) / np.maximum(bg_small.astype(np.float32), 1)
    lo, hi = (float(v) for v in np.percentile(ratio, (0.5, 99.0)))
    hi = max(hi, lo + 1e-3)
    h, w = gray.shape
    out = np.empty_like(gray)
    for top in range(0, h, STRIP_ROWS):
        b = min(h, top + STRIP_ROWS)
        # background rows for this strip, resized from the small estimate
        y0s, y1s = int(top * scale), min(bg_small.shape[0], int(math.ceil(b * scale)) + 1)
        bg = cv2.resize(bg_small[y0s : max(y1s, y0s + 1)], (w, b - top), interpolation=cv2.INTER_LINEAR)
        r = gray[top:b].astype(np.float32) / np.maximum(bg.astype(np.float32), 1)
        out[top:b] = np.clip((r - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    return StepResult((out,), (Transform(),), {"stretch": [round(lo, 3), round(hi, 3)]})


def clahe(img: np.ndarray) -> StepResult:
    """Contrast-limited adaptive histogram equalisation (OpenCV CLAHE) of the grey image."""
    gray = to_gray(img)
    op = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return StepResult((op.apply(gray),), (Transform(),), {"clip_limit": 2.0, "tiles": [8, 8]})


def denoise(img: np.ndarray) -> StepResult:
    """Non-local-means denoising of the grey image (strength scaled to the measured noise)."""
    gray = to_gray(img)
    sigma = noise_sigma(gray)
    if sigma < 2.0:
        return StepResult((gray,), (Transform(),), {"sigma": round(sigma, 2), "h": 0})
    h = float(min(25.0, max(3.0, 1.1 * sigma)))
    out = _by_strips(gray, lambda g: cv2.fastNlMeansDenoising(g, None, h, 5, 13), margin=8)
    return StepResult((out,), (Transform(),), {"sigma": round(sigma, 2), "h": round(h, 1)})


def noise_sigma(gray: np.ndarray) -> float:
    """Gaussian noise level estimate (Immerkaer's fast method) on a crop of the page."""
    g = _small(gray, 1200)[0].astype(np.float32)
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    conv = np.abs(cv2.filter2D(g, -1, k))[1:-1, 1:-1]
    conv = conv[conv < np.percentile(conv, 90)]  # strokes are not noise
    h, w = g.shape
    return float(math.sqrt(math.pi / 2) * conv.sum() / (6 * max(1, conv.size))) if (h > 2 and w > 2) else 0.0


def binarize(img: np.ndarray, window: int = 0, k: float = 0.2) -> StepResult:
    """Sauvola binarisation (window scaled to the page, about 1/60 of its short side)."""
    gray = to_gray(img)
    win = window or max(15, (min(gray.shape) // 60) | 1)

    def sauvola(g: np.ndarray) -> np.ndarray:
        f = g.astype(np.float32)
        mean = cv2.boxFilter(f, -1, (win, win), borderType=cv2.BORDER_REFLECT)
        sq = cv2.boxFilter(f * f, -1, (win, win), borderType=cv2.BORDER_REFLECT)
        std = np.sqrt(np.maximum(sq - mean * mean, 0))
        thr = mean * (1 + k * (std / 128.0 - 1))
        return np.where(f > thr, 255, 0).astype(np.uint8)

    return StepResult((_by_strips(gray, sauvola, margin=win),), (Transform(),), {"window": win, "k": k})


STEP_FUNCTIONS: dict[str, Callable[[np.ndarray], StepResult]] = {
    "orient": orient,
    "deskew": deskew,
    "crop": crop,
    "split": split,
    "flatten": flatten,
    "clahe": clahe,
    "denoise": denoise,
    "binarize": binarize,
}


# --------------------------------------------------------------------------- the stage


def run(image: Image.Image, steps: Sequence[str], page_id: str | None = None, turn: int | None = None) -> Preprocessed:
    """Preprocess one page: geometry estimated on a small copy and applied once, then photometry per part.

    `turn` (with the orient step) imposes the quarter turn instead of estimating it: the pipeline's
    recogniser vote uses it to try the upside-down reading of an ambiguous page.
    """
    if not steps:
        return Preprocessed((Part(image, Transform()),), {})
    try:
        return _run(image, steps, turn)
    except MemoryError:
        raise
    except Exception as e:  # OpenCV/NumPy raise their own types: the page fails with PreprocessError
        raise PreprocessError(f"preprocessing failed: {type(e).__name__}: {e}", page_id=page_id) from e


def _translate(x: float, y: float) -> Transform:
    return Transform((1.0, 0.0, float(x), 0.0, 1.0, float(y)))


def _run(image: Image.Image, steps: Sequence[str], forced_turn: int | None = None) -> Preprocessed:
    info: dict[str, Any] = {"steps": list(steps)}
    arr = np.asarray(image)
    W, H = image.width, image.height
    small, _ = _small(to_gray(arr))
    # Estimate on the small copy, stepping it through each geometric change; mirror every change on
    # the full-size map (`full`, `W` x `H`) from the measured parameters, scaled by the size ratio.
    # Order: skew first (searched +-MAX_SKEW around horizontal), then the quarter turn on the
    # straightened copy (ruled lines are then axis-aligned and removed), then the skew again if the
    # page was turned by 90 degrees (the first estimate then measured the wrong direction).
    full, turn, angle = Transform(), 0, 0.0

    def straighten() -> float:
        nonlocal small, full, W, H
        a, conf = estimate_skew(small)
        info.setdefault("deskew", {"angle": 0.0, "measured": a, "confidence": conf})
        if abs(a) < MIN_SKEW:
            return 0.0
        back_s, sw, sh = rotation(-a, small.shape[1], small.shape[0])
        small = warp(small, back_s, sw, sh)
        back, W, H = rotation(-a, W, H)
        full = full.then(back)
        info["deskew"] = {"angle": round(info["deskew"]["angle"] + a, 2), "confidence": conf}
        return a

    if "deskew" in steps:
        angle += abs(straighten())
    if "orient" in steps:
        if forced_turn is None:
            turn, evidence = estimate_orientation(small, search=2.0 if "deskew" in steps else MAX_SKEW)
        else:
            turn, evidence = forced_turn % 360, {"forced": True, "ambiguous": False}
        info["orient"] = {"turn": turn, **evidence}
        if turn:
            small = _quarter_turn(small, turn)
            back, W, H = rotation(turn, W, H)
            full = full.then(back)
            if "deskew" in steps and turn % 180:
                angle += abs(straighten())
    if "crop" in steps:
        box = estimate_crop(small)
        info["crop"] = {"box": None}
        if box is not None:
            fx, fy = W / small.shape[1], H / small.shape[0]
            x0, y0 = int(box[0] * fx), int(box[1] * fy)
            x1, y1 = min(W, int(math.ceil(box[2] * fx))), min(H, int(math.ceil(box[3] * fy)))
            small = small[box[1] : box[3], box[0] : box[2]]
            full, W, H = full.then(_translate(x0, y0)), x1 - x0, y1 - y0
            info["crop"] = {"box": [x0, y0, x1, y1]}  # in the oriented, deskewed page
    pieces = [(full, W, H, "")]
    if "split" in steps:
        gutter, evidence = estimate_gutter(small)
        info["split"] = {"gutter": None, **evidence}
        if gutter is not None:
            g = min(W - 1, max(1, round(gutter * W / small.shape[1])))
            info["split"]["gutter"] = g
            left, right = PART_SUFFIXES
            pieces = [(full, g, H, left), (full.then(_translate(g, 0)), W - g, H, right)]
    del small

    parts: list[Part] = []
    for t, pw, ph, sfx in pieces:
        if angle:
            out = warp(arr, t, pw, ph)  # one resampling for turn + skew + crop + split
        else:  # exact: quarter turn, then a slice
            rotated = _quarter_turn(arr, turn)
            fx, fy = rotation(turn, arr.shape[1], arr.shape[0])[0].inverse().point(*t.point(0, 0))
            x0, y0 = int(round(fx)), int(round(fy))
            out = rotated[y0 : y0 + ph, x0 : x0 + pw]
            t = Transform.from_matrix(_snap(t).matrix)
        for name in PHOTOMETRIC:
            if name in steps:
                r = STEP_FUNCTIONS[name](out)
                info.setdefault(name + sfx, r.info)
                out = r.image
        parts.append(Part(Image.fromarray(np.ascontiguousarray(out)), t, sfx))
    return Preprocessed(tuple(parts), info)


def _snap(t: Transform) -> Transform:
    return Transform(tuple(float(round(v)) for v in t.m))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- back to the original


def to_original(
    seg: PageSegmentation, text: PageText | None, t: Transform, width: int, height: int
) -> tuple[PageSegmentation, PageText | None]:
    """Map a segmentation and its text made on a preprocessed image back into the original `width` x `height`."""
    if t.is_identity and (seg.width, seg.height) == (width, height):
        return seg, text
    regions = tuple(Region(r.id, t.points(r.polygon, width, height), r.type) for r in seg.regions)
    lines = tuple(
        Line(ln.id, t.points(ln.baseline, width, height), t.points(ln.polygon, width, height), ln.region_id, ln.type)
        for ln in seg.lines
    )
    out_seg = PageSegmentation(width, height, regions, lines, seg.text_direction)
    if text is None:
        return out_seg, None
    out_text = PageText(
        tuple(
            LineText(
                lt.line_id,
                lt.text,
                lt.confidence,
                tuple(Word(w.text, t.box(w.box, width, height), w.confidence) for w in lt.words),
            )
            for lt in text.lines
        )
    )
    return out_seg, out_text
