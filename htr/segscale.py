"""`--seg-height auto`: at which height the segmentation network sees a page (no Kraken here).

Kraken's BLLA network sees every page at its model's height (1800 px for the default model); most of a
page's segmentation CPU grows with that height squared. Letters, manuscripts and typescripts segment as
well at 1200 px (measured on ../shared/gt, docs/PERFORMANCE.md "Segmentation height"); dense registers
and landscape double pages do not (their short entries in columns, their small writing). `auto` segments
at PROBE_HEIGHT first and keeps the result only when the page is portrait, its lines, as found, are long
(their median baseline spans at least MIN_LINE_SHARE of the page's width: prose, not a table) and at
least MIN_PITCH network pixels apart; otherwise the page is segmented again at the model's own height
(Kraken's path). The thresholds were set on one page of each of the 15 sub-collections of ../shared/gt
and checked on another page of each; MIN_PITCH was then raised from 22 to 26 after a dense
administrative page of the benchmark (46 lines, 23 px apart at the probe) read 3.3 points worse at 1200
px, where a typescript 25 px apart had read as well (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import statistics

from core.types import PageSegmentation

PROBE_HEIGHT = 1200  # network pixels
MIN_PITCH = 26.0  # median distance between a line and its nearest neighbour above or below, in network pixels
MIN_LINE_SHARE = 0.4  # median baseline length / page width: registers and catalogues are 0.02-0.2, prose 0.4-0.85
MAX_ASPECT = 1.0  # width / height: wider pages (double pages, landscape registers) are never probed


def probe_height(width: int, height: int, model_height: int) -> int | None:
    """The probe's height for a page this size, or None when the page goes straight to the model's height."""
    if height <= 0 or width / height > MAX_ASPECT or model_height <= PROBE_HEIGHT:
        return None
    return PROBE_HEIGHT


def line_pitch(seg: PageSegmentation) -> float | None:
    """Median vertical distance (page pixels) from each line to its nearest neighbour that overlaps it
    horizontally by at least half the shorter line; None with fewer than 3 such lines."""
    spans = []
    for ln in seg.lines:
        xs = [x for x, _ in ln.baseline]
        spans.append((min(xs), max(xs), statistics.fmean(y for _, y in ln.baseline)))
    nearest = []
    for i, (a0, a1, ay) in enumerate(spans):
        best = None
        for j, (b0, b1, by) in enumerate(spans):
            overlap = min(a1, b1) - max(a0, b0)
            if j == i or overlap < 0.5 * min(a1 - a0, b1 - b0) or overlap <= 0:
                continue
            d = abs(ay - by)
            if d > 0 and (best is None or d < best):
                best = d
        if best is not None:
            nearest.append(best)
    return statistics.median(nearest) if len(nearest) >= 3 else None


def line_share(seg: PageSegmentation) -> float | None:
    """Median baseline length (its horizontal extent) as a share of the page's width; None without lines."""
    if not seg.lines or seg.width <= 0:
        return None
    return statistics.median(max(x for x, _ in ln.baseline) - min(x for x, _ in ln.baseline) for ln in seg.lines) / (
        seg.width
    )


def probe_is_enough(seg: PageSegmentation, probe: int) -> bool:
    """Keep the probe's segmentation? Its lines must be long (prose, not a table) and MIN_PITCH network pixels
    apart (or too few to say)."""
    share = line_share(seg)
    if share is not None and share < MIN_LINE_SHARE:
        return False
    pitch = line_pitch(seg)
    return pitch is None or pitch * probe / seg.height >= MIN_PITCH
