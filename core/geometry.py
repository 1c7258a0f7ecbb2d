"""Page geometry: points and boxes, clamping them into a page, clipping one box into another.

Points are `(x, y)` pixels; boxes are `(x0, y0, x1, y1)` with x1/y1 exclusive (ALTO WIDTH = x1 - x0).
Every stage that moves a coordinate into the page goes through here, so the rules are written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

Point = tuple[int, int]
Box = tuple[int, int, int, int]

N = TypeVar("N", int, float)


def clamp(v: N, lo: N, hi: N) -> N:
    """`v` moved into [lo, hi] (`min(max(v, lo), hi)`: NaN stays NaN)."""
    return min(max(v, lo), hi)


def clamp_point(x: int, y: int, width: int, height: int) -> Point:
    """The integer point `(x, y)` moved into a `width` x `height` page: [0, width-1] x [0, height-1]."""
    return (clamp(x, 0, width - 1), clamp(y, 0, height - 1))


def clamp_points(points: Iterable[Sequence[float]], width: int, height: int) -> tuple[Point, ...]:
    """`points` truncated to integers (`int()`) and moved into the page; every point kept."""
    return tuple(clamp_point(int(x), int(y), width, height) for x, y in points)


def round_points(points: Iterable[Sequence[float]], width: int, height: int) -> tuple[Point, ...]:
    """`points` rounded to the nearest pixel and moved into the page; a point equal to the one before is dropped.

    For model output (Kraken repeats points) and coordinates mapped back from a preprocessed image.
    """
    out: list[Point] = []
    for x, y in points:
        p = clamp_point(int(round(x)), int(round(y)), width, height)
        if not out or out[-1] != p:
            out.append(p)
    return tuple(out)


def bbox_of(points: Sequence[Point]) -> Box:
    """Smallest box holding all points (x1/y1 exclusive)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs) + 1, max(ys) + 1)


def clip_box(box: Sequence[float], into: Box) -> Box:
    """`box` (truncated to integers) clipped into `into`, keeping at least 1x1 inside it: always within `into`."""
    x0 = clamp(int(box[0]), into[0], into[2] - 1)
    y0 = clamp(int(box[1]), into[1], into[3] - 1)
    x1 = clamp(int(box[2]), x0 + 1, into[2])
    y1 = clamp(int(box[3]), y0 + 1, into[3])
    return (x0, y0, x1, y1)


def intersect_box(box: Box, outer: Box) -> Box:
    """The intersection of `box` and `outer`, at least 1x1; a box outside `outer` stays outside it (1 pixel wide).

    Looser than `clip_box`: recognition keeps word boxes as the model placed them, the ALTO writer
    clips them into their line with `clip_box` afterwards.
    """
    x0, y0 = max(box[0], outer[0]), max(box[1], outer[1])
    x1, y1 = min(box[2], outer[2]), min(box[3], outer[3])
    if x1 <= x0:
        x1 = x0 + 1
    if y1 <= y0:
        y1 = y0 + 1
    return (x0, y0, x1, y1)
