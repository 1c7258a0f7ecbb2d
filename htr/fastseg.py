"""Fast post-processing of a BLLA network's heatmaps: regions, baselines and line polygons (no Kraken here).

The same algorithm, parameters and geometry as Kraken 7.1's post-processing (kraken.lib.segmentation:
`vectorize_regions`, `vectorize_lines`, `calculate_polygonal_environment`), with its slow steps done
another way (docs/PERFORMANCE.md has the profile):

- the Sato ridge filter on the baseline heatmap with OpenCV separable filters (Kraken: skimage's `sato`
  through SciPy's 1-D filters; about a third of the post-processing);
- blob and region outlines with `cv2.findContours` (Kraken: a Moore boundary tracer in Python, pixel by pixel);
- the room of each line (rays every 10 px from the baseline to the nearest neighbour or page edge): every ray
  of a side at once, crossings in NumPy (Kraken: one shapely intersection and distance per ray and hit);
- the seam-carving patch (chessboard distance to the baseline, polygon mask, erosion, rotation) with OpenCV
  and NumPy, and every seam of a page carved in a few batched loops (Kraken: one Python loop per seam).

Each step gives Kraken's result exactly on every page measured (tests/test_fastseg.py, docs/PERFORMANCE.md).
`htr.segment` runs the network, gives the heatmaps here and builds Kraken's containers from the result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import shapely
from PIL import Image, ImageDraw
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import nearest_points, unary_union

log = logging.getLogger(__name__)

VERSION = 1  # named in ALTO's Processing when this engine ran: bump when its output changes

Points = list[list[int]]

_SATO_SIGMAS = (1, 3, 5, 7, 9)  # skimage.filters.sato's default scales, as Kraken calls it
_MASK_VAL = 99999.0  # seam cost outside a line's room
_ENDPOINT_KERNEL = np.array([[1, 1, 1], [1, 10, 1], [1, 1, 1]], dtype=np.float32)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


# ---------------------------------------------------------------------------------------------- ridges


def _gaussian_taps(sd: float, order: int, radius: int) -> np.ndarray:
    """Taps of SciPy's `gaussian_filter1d` (order 0 or 1), reversed for OpenCV's correlation."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sd * sd) * x**2)
    phi /= phi.sum()
    if order == 1:
        phi = -x / (sd * sd) * phi
    return np.ascontiguousarray(phi[::-1], dtype=np.float32)


def ridges(heat: np.ndarray) -> np.ndarray:
    """Sato's tubeness of bright ridges (skimage.filters.sato(heat, black_ridges=False, mode='constant')).

    Per scale: the Hessian from two first-order Gaussian derivatives (sigma/sqrt(2) each, as skimage does),
    its larger eigenvalue of the negated map, clipped at 0, times sigma squared; the maximum over scales."""
    image = np.negative(heat, dtype=np.float32)
    out = np.zeros_like(image)

    def filt(src: np.ndarray, along_rows: np.ndarray, along_cols: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(src, cv2.CV_32F, along_cols, along_rows, borderType=cv2.BORDER_CONSTANT)

    for sigma in _SATO_SIGMAS:
        sd = sigma / math.sqrt(2)
        # skimage truncates at 8 sd (100 for sigma 1, where taps past 8 sd are below 1e-15)
        radius = int(8 * sd + 0.5)
        g0, g1 = _gaussian_taps(sd, 0, radius), _gaussian_taps(sd, 1, radius)
        d_r, d_c = filt(image, g1, g0), filt(image, g0, g1)
        h_rr, h_rc, h_cc = filt(d_r, g1, g0), filt(d_r, g0, g1), filt(d_c, g0, g1)
        larger = (h_rr + h_cc) / 2 + np.sqrt(h_rc**2 + ((h_rr - h_cc) / 2) ** 2)
        np.maximum(out, np.float32(sigma**2) * np.maximum(larger, 0), out=out)
    return out


# ---------------------------------------------------------------------------------------------- outlines


def _outlines(binary: np.ndarray, min_area: int = 0) -> list[np.ndarray]:
    """The outer boundary of every 8-connected blob as (row, col) pixel points, blobs in raster order of their
    first pixel (skimage.measure.label's order), blobs of fewer than `min_area` pixels left out."""
    mask = binary.astype(np.uint8)
    if min_area:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    found = []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0] if hierarchy is not None else ()):
        if parent != -1:  # the outline of a hole
            continue
        pts = contour[:, 0, ::-1]
        pts = np.concatenate([pts[:1], pts[:0:-1]])  # Kraken's tracer goes the other way round from the same pixel
        if min_area and stats[int(labels[pts[0][0], pts[0][1]]), cv2.CC_STAT_AREA] < min_area:
            continue
        found.append(pts)
    # an outer contour starts at its blob's first pixel in raster order
    found.sort(key=lambda pts: (int(pts[0][0]), int(pts[0][1])))
    return found


def regions(heat: np.ndarray, threshold: float = 0.5) -> list[Points]:
    """Region outlines ([x, y] points) from one region heatmap (kraken.lib.segmentation.vectorize_regions)."""
    polygons = [Polygon(b) for b in _outlines(heat > threshold) if len(b) > 2]
    merged = unary_union(polygons)
    parts = [merged] if merged.geom_type == "Polygon" else list(getattr(merged, "geoms", []))
    return [np.array(p.boundary.simplify(10).coords, dtype=np.uint)[:, [1, 0]].tolist() for p in parts]


# ---------------------------------------------------------------------------------------------- baselines


def _filter_endpoints(extrema: np.ndarray, skel: np.ndarray, max_endpoints: int) -> np.ndarray:
    """Drop the endpoints of noisy skeleton blobs (more than 10 endpoints each), then of the smallest blobs,
    until at most `max_endpoints` are left (Kraken's guard against its O(n^2) path search)."""
    from skimage.measure import label

    per_blob = 10
    labels = label(skel)
    blob = labels[extrema[:, 0], extrema[:, 1]]
    ids, counts = np.unique(blob, return_counts=True)
    count = dict(zip(ids.tolist(), counts.tolist()))
    keep = {i for i, n in count.items() if n <= per_blob}
    if sum(count[i] for i in keep) > max_endpoints:
        sizes = np.bincount(labels.ravel())
        budget: set[int] = set()
        total = 0
        for i in sorted(keep, key=lambda i: sizes[i], reverse=True):
            if total + count[i] > max_endpoints:
                break
            budget.add(i)
            total += count[i]
        keep = budget
    return extrema[np.isin(blob, list(keep))]


def _paths(skel: np.ndarray, extrema: np.ndarray) -> list[np.ndarray]:
    """The cheapest skeleton path between each pair of endpoints that meet (skimage's MCP_Connect)."""
    from skimage.graph import MCP_Connect

    class Connect(MCP_Connect):
        def __init__(self, costs):
            super().__init__(costs)
            self.best: dict[tuple[int, int], tuple] = {}

        def create_connection(self, id1, id2, pos1, pos2, cost1, cost2):
            key = (min(id1, id2), max(id1, id2))
            total = cost1 + cost2
            if key not in self.best or self.best[key][2] > total:
                self.best[key] = (pos1, pos2, total)

        def goal_reached(self, int_index, float_cumcost):
            return 2 if float_cumcost else 0

    # Only skeleton pixels cost nothing and the search ends at the first pixel that costs something: the
    # skeleton's bounding box and a 1-pixel margin hold the whole search (MCP's set-up is per pixel of its array)
    rows, cols = np.nonzero(skel)
    r0, c0 = max(int(rows.min()) - 1, 0), max(int(cols.min()) - 1, 0)
    r1, c1 = int(rows.max()) + 2, int(cols.max()) + 2
    mcp = Connect(~skel[r0:r1, c0:c1])
    mcp.find_costs(extrema - (r0, c0))
    return [np.concatenate([mcp.traceback(a), mcp.traceback(b)[::-1]]) + (r0, c0) for a, b, _ in mcp.best.values()]


def _extend(lines: list[Points], binary: np.ndarray) -> list[Points]:
    """Move each baseline's ends out to the outline of the blob that holds it ((row, col) points)."""
    outlines = []
    for b in _outlines(binary, min_area=6):
        if len(b) > 3:
            try:
                outlines.append(Polygon(b).simplify(0.01).buffer(0))
            except Exception as e:  # GEOS on a degenerate outline: Kraken skips the blob too
                log.info("outline of a baseline blob skipped: %s", e)
    if not outlines:
        return lines
    shapes = _objects(outlines)
    for bl in lines:
        inside = np.flatnonzero(shapely.contains(shapes, LineString(bl)))
        if not inside.size:
            continue
        pol = shapes[inside[0]]
        for end, nxt in ((0, 1), (-1, -2)):
            if not pol.contains(Point(bl[end])):
                continue
            away = (bl[end][0] - 10 * (bl[nxt][0] - bl[end][0]), bl[end][1] - 10 * (bl[nxt][1] - bl[end][1]))
            hit = pol.boundary.intersection(LineString([away, bl[end]]))
            if hit.geom_type != "Point":
                hit = nearest_points(Point(bl[end]), pol)[1]
            bl[end] = np.array(hit.coords[0], "int").tolist()
    return lines


def baselines(
    heat: np.ndarray,
    threshold: float = 0.17,
    min_length: float = 5,
    text_direction: str = "horizontal",
    max_endpoints: int = 400,
) -> list[Points]:
    """Baselines ([x, y] points, oriented) from (start separators, end separators, baseline) heatmaps
    (kraken.lib.segmentation.vectorize_lines)."""
    from scipy.ndimage import maximum_filter
    from skimage.measure import approximate_polygon
    from skimage.morphology import skeletonize

    if text_direction not in ("horizontal", "vertical"):
        raise ValueError(f'invalid text direction "{text_direction}"')
    st_map, end_map, bl_map = heat[0], heat[1], heat[2]
    binary = ridges(bl_map) > threshold
    skel = skeletonize(binary)
    neighbours = cv2.filter2D(skel.astype(np.float32), -1, _ENDPOINT_KERNEL, borderType=cv2.BORDER_CONSTANT)
    extrema = np.argwhere((neighbours == 11) & skel)
    if len(extrema) > max_endpoints:
        extrema = _filter_endpoints(extrema, skel, max_endpoints)
    if len(extrema) < 2:
        return []
    try:
        paths = _paths(skel, extrema)
    except ValueError:
        return []
    lines = _extend([approximate_polygon(p, 3).tolist() for p in paths], binary)

    f_st, f_end = maximum_filter(st_map, size=20), maximum_filter(end_map, size=20)
    oriented = []
    for bl in lines:
        left, right = tuple(bl[0]), tuple(bl[-1])
        at_left, at_right = f_st[left] - f_end[left], f_st[right] - f_end[right]
        if at_left > 0.2 and at_right < -0.2:
            pass
        elif at_left < -0.2 and at_right > 0.2:
            bl = bl[::-1]
        elif text_direction == "horizontal":
            if bl[0][1] > bl[-1][1]:
                bl = bl[::-1]
        elif bl[0][0] > bl[-1][0]:
            bl = bl[::-1]
        if LineString(bl).length >= min_length:
            oriented.append([p[::-1] for p in bl])
    return oriented


# ---------------------------------------------------------------------------------------------- polygons


def features(scal_im: np.ndarray) -> np.ndarray:
    """The seam-carving energy of the network-sized page: Sobel gradient magnitude, Gaussian sigma 0.5."""
    from scipy.ndimage import gaussian_filter
    from skimage.filters import sobel

    return gaussian_filter(sobel(scal_im), 0.5)


def _ray_hit(ray: np.ndarray, direction: np.ndarray, aabb: np.ndarray) -> np.ndarray:
    """Where a ray from `ray` along `direction` leaves the box (0, 0)-`aabb` (one ray; IEEE inf/nan as Kraken)."""
    frac = np.empty(2, dtype=ray.dtype)
    frac[direction == 0.0] = np.inf
    frac[direction != 0.0] = np.divide(1.0, direction[direction != 0.0])
    t1, t2 = -ray[0] * frac[0], (aabb[0] - ray[0]) * frac[0]
    t3, t4 = -ray[1] * frac[1], (aabb[1] - ray[1]) * frac[1]
    tmin = max(min(t1, t2), min(t3, t4))
    tmax = min(max(t1, t2), max(t3, t4))
    return ray + direction * min(t for t in (tmin, tmax) if t >= 0)


def _ray_hits(rays: np.ndarray, direction: np.ndarray, aabb: np.ndarray) -> np.ndarray:
    """`_ray_hit` for many rays of one direction."""
    if np.any(direction == 0.0):
        return np.array([_ray_hit(r, direction, aabb) for r in rays])
    frac = 1.0 / direction
    t1, t2 = -rays[:, 0] * frac[0], (aabb[0] - rays[:, 0]) * frac[0]
    t3, t4 = -rays[:, 1] * frac[1], (aabb[1] - rays[:, 1]) * frac[1]
    tmin = np.maximum(np.minimum(t1, t2), np.minimum(t3, t4))
    tmax = np.minimum(np.maximum(t1, t2), np.maximum(t3, t4))
    if np.any((tmin < 0) & (tmax < 0)):
        raise ValueError("a ray misses the page")
    t = np.where(tmin >= 0, np.where(tmax >= 0, np.minimum(tmin, tmax), tmin), tmax)
    return rays + direction[None, :] * t[:, None]


def _closest_hits(origins: np.ndarray, ends: np.ndarray, side) -> np.ndarray:
    """For each segment origin->end (all parallel), its point on `side` closest to the origin (Kraken's
    `_find_closest_point` on `segment.intersection(side)`), in NumPy: the segments are made vertical by a
    rotation, each edge of `side` is tested only against the segments whose abscissa it spans, and the first
    crossing along each segment wins. A segment that runs along an edge takes GEOS's exact way."""
    coords, part = shapely.get_coordinates(shapely.get_parts(side), return_index=True)
    same = part[1:] == part[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    ray = ends - origins
    length = np.hypot(*ray.T)
    if not len(a) or not np.all(length > 0):
        raise ValueError("no intersection with the boundaries")
    cos, sin = (ray / length[:, None]).mean(axis=0)  # near parallel: their ends are rounded to whole pixels
    u_org, u_end = origins[:, 0] * sin - origins[:, 1] * cos, ends[:, 0] * sin - ends[:, 1] * cos
    margin = float(np.abs(u_end - u_org).max()) + 1e-7
    order = np.argsort(u_org, kind="stable")
    u_sorted = u_org[order]
    ua, ub = a[:, 0] * sin - a[:, 1] * cos, b[:, 0] * sin - b[:, 1] * cos
    lo = np.searchsorted(u_sorted, np.minimum(ua, ub) - margin, side="left")
    hi = np.searchsorted(u_sorted, np.maximum(ua, ub) + margin, side="right")
    counts = hi - lo
    edge = np.repeat(np.arange(len(a)), counts)
    seg = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
    o, r = origins[seg], ends[seg] - origins[seg]
    p, q = a[edge], b[edge] - a[edge]
    denom = r[:, 0] * q[:, 1] - r[:, 1] * q[:, 0]
    w = p - o
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[:, 0] * q[:, 1] - w[:, 1] * q[:, 0]) / denom
        s = (w[:, 0] * r[:, 1] - w[:, 1] * r[:, 0]) / denom
    eps = 1e-9
    parallel = np.abs(denom) <= eps * np.hypot(*r.T) * np.hypot(*q.T)
    # an edge along the segment (collinear and overlapping): GEOS's exact way for that segment
    along = parallel & (np.abs(w[:, 0] * r[:, 1] - w[:, 1] * r[:, 0]) <= eps * np.hypot(*r.T) * np.hypot(*w.T) + eps)
    crossing = ~parallel & (t >= -eps) & (t <= 1 + eps) & (s >= -eps) & (s <= 1 + eps)
    slow = np.zeros(len(origins), bool)
    slow[seg[along]] = True
    best_t = np.full(len(origins), np.inf)
    best_edge = np.full(len(origins), -1)
    if np.any(crossing):
        cs, ct, ce = seg[crossing], np.clip(t[crossing], 0, 1), edge[crossing]
        pick = np.lexsort((ct, cs))
        first = np.ones(len(pick), bool)
        first[1:] = cs[pick][1:] != cs[pick][:-1]
        best_t[cs[pick][first]], best_edge[cs[pick][first]] = ct[pick][first], ce[pick][first]
    if np.any((best_edge < 0) & ~slow):
        raise ValueError("no intersection with the boundaries")
    out = origins + (ends - origins) * np.where(np.isfinite(best_t), best_t, 0)[:, None]
    hit = best_edge >= 0
    flat = hit & (a[best_edge, 1] == b[best_edge, 1])  # on a horizontal edge: its exact ordinate
    out[flat, 1] = a[best_edge[flat], 1]
    upright = hit & (a[best_edge, 0] == b[best_edge, 0])
    out[upright, 0] = a[best_edge[upright], 0]
    for i in np.flatnonzero(slow):
        out[i] = _closest_hit(origins[i], shapely.intersection(shapely.linestrings([origins[i], ends[i]]), side))
    return out


def _closest_hit(origin: np.ndarray, hit) -> tuple[float, float]:
    """Kraken's `_find_closest_point`, for one intersection."""
    spt = Point(origin)
    if hit.geom_type == "MultiPoint":
        return min(hit.geoms, key=lambda p: spt.distance(p)).coords[0]
    if hit.geom_type == "Point":
        return hit.coords[0]
    if hit.geom_type == "GeometryCollection" and len(hit.geoms) > 0:
        nearest = min(hit.geoms, key=lambda g: spt.distance(g))
        return nearest_points(spt, nearest)[1].coords[0]
    raise ValueError(f"no intersection with the boundaries: {hit.wkt}")


def _room(line: np.ndarray, bounds: np.ndarray, others: np.ndarray, p_dir: np.ndarray):
    """The points above and below the baseline, every 10 px, where the nearest other object (buffered by 1 px)
    or the page edge stops a ray at right angles to the line's mean direction."""
    ls = LineString(line)
    steps = np.arange(10, ls.length, 10)
    along = shapely.get_coordinates(shapely.line_interpolate_point(ls, steps)) if len(steps) else np.empty((0, 2))
    points = np.vstack([line[:1], along, line[-1:]])
    up = _ray_hits(points, np.array((p_dir[1], -p_dir[0])), bounds + 1).astype("int")
    down = _ray_hits(points, np.array((-p_dir[1], p_dir[0])), bounds + 1).astype("int")
    upper = Polygon(points.tolist() + up.tolist())
    lower = Polygon(points.tolist() + down.tolist())
    if len(others):
        above = shapely.intersects(upper, others)
        below = ~above & shapely.intersects(lower, others)
    else:
        above = below = np.zeros(0, bool)
    side_a = unary_union([LineString(up), *others[above]]).buffer(1).boundary
    side_b = unary_union([LineString(down), *others[below]]).buffer(1).boundary
    env_up = _closest_hits(points, up.astype(float), side_a)
    env_bottom = _closest_hits(points, down.astype(float), side_b)
    return env_up.astype("uint"), env_bottom.astype("uint")


def _rotation(angle: float, scale: float, shape: tuple[int, int]):
    """The affine map from the rotated, x-scaled patch (output) to the patch (Kraken's `_rotate`), and the
    output's shape."""
    from skimage.transform import AffineTransform

    rows, cols = shape
    tform = AffineTransform(rotation=angle, scale=(1 / scale, 1))
    corners = tform.inverse(np.array([[0, 0], [0, rows - 1], [cols - 1, rows - 1], [cols - 1, 0]]))
    minc, minr = corners[:, 0].min(), corners[:, 1].min()
    maxc, maxr = corners[:, 0].max(), corners[:, 1].max()
    out_shape = (int(np.around(maxr - minr + 1)), int(np.around(maxc - minc + 1)))
    translation = tform([[minc, minr]])
    return AffineTransform(rotation=angle, scale=(1 / scale, 1), translation=list(translation.flatten())), out_shape


@dataclass(frozen=True)
class _SeamTask:
    """One side of one line, ready for seam carving: the rotated cost patch and how to map a path back."""

    cost: np.ndarray  # rows x columns, the line's direction left to right
    tform: Any  # skimage AffineTransform: cost (column, row) -> patch (x, y)
    x0: int  # first column of `cost` in the rotated patch
    outside: np.ndarray  # the patch's cells outside the room
    origin: tuple[int, int]  # the patch's top-left corner on the page (x, y)


def _seam_task(baseline: np.ndarray, polygon: np.ndarray, angle: float, im_feats: np.ndarray, bias: float = 150):
    """The energy between a baseline and one side of its room, biased by the distance to the baseline, outside
    the room at a prohibitive cost, rotated level and scaled to at most 600 columns (Kraken's `_calc_seam`)."""
    from skimage import draw

    c_min, c_max = int(polygon[:, 0].min()), int(polygon[:, 0].max())
    r_min, r_max = int(polygon[:, 1].min()), int(polygon[:, 1].max())
    patch = im_feats[r_min : r_max + 2, c_min : c_max + 2].copy()
    # chessboard distance to the baseline
    on_line = np.full(patch.shape, 255, np.uint8)
    local = baseline - (c_min, r_min)
    for (c0, r0), (c1, r1) in zip(local[:-1], local[1:]):
        on_line[draw.line(r0, c0, r1, c1)] = 0
    dist_bias = cv2.distanceTransform(on_line, cv2.DIST_C, 3)
    # outside the room (eroded twice: rotation aliasing), at a prohibitive cost
    room = Image.new("L", patch.shape[::-1], 0)
    ImageDraw.Draw(room).polygon([tuple(p) for p in (polygon - (c_min, r_min)).astype(int).tolist()], fill=255, width=2)
    outside = (np.asarray(room) <= 128).astype(np.uint8)
    outside = cv2.erode(outside, _CROSS, iterations=2, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    patch[outside] = _MASK_VAL
    patch += dist_bias * (np.mean(patch[patch != _MASK_VAL]) / bias)
    extrema = baseline[(0, -1), :] - (c_min, r_min)
    scale = min(1.0, 600 / (c_max - c_min))
    tform, shape = _rotation(angle, scale, patch.shape)
    # nearest-neighbour sampling exactly as skimage's warp(order=0) through SciPy's map_coordinates(order=0,
    # mode="grid-constant") does it (OpenCV's warpAffine rounds some halves the other way)
    m = tform.params
    cols_out, rows_out = np.arange(shape[1], dtype=float)[None, :], np.arange(shape[0], dtype=float)[:, None]
    src_x = m[0, 0] * cols_out + m[0, 1] * rows_out + m[0, 2]
    src_y = m[1, 0] * cols_out + m[1, 1] * rows_out + m[1, 2]
    ix, iy = np.floor(src_x + 0.5).astype(np.int64), np.floor(src_y + 0.5).astype(np.int64)
    inside = (ix >= 0) & (ix < patch.shape[1]) & (iy >= 0) & (iy < patch.shape[0])
    rotated = np.full(src_x.shape, _MASK_VAL)
    rotated[inside] = patch[iy[inside], ix[inside]]
    x_offsets = np.sort(np.around(tform.inverse(extrema)[:, 0]).astype("int"))
    cost = rotated[:, x_offsets[0] : x_offsets[1] + 1]
    return _SeamTask(cost, tform, int(x_offsets[0]), outside, (c_min, r_min))


def _carve(costs: list[np.ndarray], budget: int = 2_000_000) -> list[np.ndarray | None]:
    """For each cost matrix, the row of its cheapest left-to-right path in every column, a step moving at most
    one row (Kraken's seam dynamic programme, its running minimum rounded to float32 as there). Matrices of
    similar height go through the loop over columns together, padded to one shape with infinite cost, in
    groups of at most `budget` cells, in one reused buffer."""
    out: list[np.ndarray | None] = [None] * len(costs)
    order = sorted((k for k in range(len(costs)) if costs[k].size), key=lambda k: costs[k].shape)
    groups: list[list[int]] = []
    for k in order:
        rows, cols = costs[k].shape
        if groups:
            group = groups[-1]
            g_cols = max(cols, *(costs[i].shape[1] for i in group))
            if (len(group) + 1) * (rows + 2) * g_cols <= budget:  # sorted: this one is the tallest
                group.append(k)
                continue
        groups.append([k])
    need = max((len(g) * (costs[g[-1]].shape[0] + 2) * max(costs[i].shape[1] for i in g) for g in groups), default=0)
    buffer = np.empty(need)
    steps_buffer = np.empty(need, np.int32)
    for group in groups:
        rows = costs[group[-1]].shape[0]
        cols = max(costs[k].shape[1] for k in group)
        cost = buffer[: len(group) * cols * (rows + 2)].reshape(len(group), cols, rows + 2)
        cost.fill(np.inf)
        for b, k in enumerate(group):
            cost[b, : costs[k].shape[1], 1 : costs[k].shape[0] + 1] = costs[k].T
        back = steps_buffer[: len(group) * max(cols - 1, 0) * rows].reshape(len(group), max(cols - 1, 0), rows)
        offsets = np.arange(-1, rows - 1, dtype=np.int32)
        for i in range(cols - 1):
            above, here, below = cost[:, i, :-2], cost[:, i, 1:-1], cost[:, i, 2:]
            rest = np.minimum(here, below)
            back[:, i] = np.where(above <= rest, 0, np.where(here <= below, 1, 2)) + offsets  # argmin, first wins
            cost[:, i + 1, 1:-1] += np.minimum(above, rest).astype(np.float32)
        for b, k in enumerate(group):
            n_rows, n_cols = costs[k].shape
            path = np.empty(n_cols, dtype=np.int64)
            j = int(np.argmin(cost[b, n_cols - 1, 1 : n_rows + 1]))
            path[-1] = j
            steps = back[b]
            for i in range(n_cols - 2, -1, -1):
                j = int(steps[i, j])
                path[i] = j
            out[k] = path
    return out


def _seam(task: _SeamTask, path: np.ndarray) -> np.ndarray:
    """A carved path back on the page: rows clipped to one standard deviation around their mean, unrotated,
    points outside the patch or the room dropped."""
    seam = np.stack([np.arange(len(path)) + task.x0, path], axis=1)
    mean, std = seam[:, 1].mean(), seam[:, 1].std()
    seam[:, 1] = np.clip(seam[:, 1], mean - std, mean + std)
    seam = task.tform(seam).astype("int")
    seam = seam[seam.min(axis=1) >= 0, :]
    fits = (seam < task.outside.shape[::-1]).T
    seam = seam[np.logical_and(fits[0], fits[1]), :]
    seam = seam[np.invert(task.outside[seam.T[1], seam.T[0]])]
    return seam + task.origin


def _offset_coords(seam: LineString, distance: int, side: str) -> np.ndarray:
    moved = seam.parallel_offset(distance, side=side) if distance else None
    if moved is None or moved.geom_type == "MultiLineString":
        return np.array(seam.coords, dtype=int)
    coords = np.array(moved.coords, dtype=int)
    return coords[::-1] if side == "right" else coords


@dataclass(frozen=True)
class _LineTask:
    room: Any  # shapely Polygon: the line's room above and below the baseline
    end_points: tuple
    offset: int
    upper: _SeamTask
    lower: _SeamTask


def _line_task(bl: Points, others: np.ndarray, bounds: np.ndarray, topline: bool | None, im_feats) -> _LineTask:
    """A line's room and its two seam tasks (Kraken's `calculate_polygonal_environment` up to the carving)."""
    ls = LineString(bl)
    offset = 8 if topline is not None else 0
    offset_line = np.array(ls.parallel_offset(offset, side="left" if topline else "right").coords, float)
    line = np.array(ls.coords, dtype=float)
    lengths = np.linalg.norm(np.diff(line.T), axis=0)
    p_dir = np.mean(np.diff(line.T) * lengths / lengths.sum(), axis=1)
    p_dir = p_dir.T / np.sqrt(np.sum(p_dir**2, axis=-1))
    env_up, env_bottom = _room(line, bounds, others, p_dir)
    baseline, offset_baseline = line.astype("int"), offset_line.astype("int")
    upper = np.concatenate((baseline, env_up[::-1]))
    bottom = np.concatenate((baseline, env_bottom[::-1]))
    angle = np.arctan2(p_dir[1], p_dir[0])
    room = unary_union([Polygon(upper), Polygon(bottom)])
    if topline:
        up = _seam_task(baseline, upper, angle, im_feats)
        low = _seam_task(offset_baseline, np.concatenate((offset_baseline, env_bottom[::-1])), angle, im_feats)
    else:
        up = _seam_task(offset_baseline, np.concatenate((offset_baseline, env_up[::-1])), angle, im_feats)
        low = _seam_task(baseline, bottom, angle, im_feats)
    return _LineTask(room, (bl[0], bl[-1]), offset, up, low)


def _polygon(task: _LineTask, up_seam: np.ndarray, low_seam: np.ndarray) -> np.ndarray:
    """The line's polygon: the two seams, moved half the offset away from the line, joined at the baseline's
    ends and kept inside its room."""
    end_points = task.end_points
    up_coords = _offset_coords(LineString(up_seam).simplify(5), task.offset // 2, "right")
    low_coords = _offset_coords(LineString(low_seam).simplify(5), task.offset // 2, "left")
    polygon = Polygon(np.concatenate(([end_points[0]], up_coords, [end_points[-1]], low_coords[::-1])))
    if not polygon.is_valid:
        polygon = Polygon(np.concatenate(([end_points[-1]], up_coords, [end_points[0]], low_coords)))
    if not polygon.is_valid:
        from shapely.validation import explain_validity

        raise ValueError(f"invalid bounding polygon computed: {explain_validity(polygon)}")
    return np.array(task.room.intersection(polygon).boundary.coords, dtype=int)


def _objects(geoms: list) -> np.ndarray:
    out = np.empty(len(geoms), dtype=object)
    out[:] = geoms
    return out


def polygons(
    lines: Sequence[Points],
    im_feats: np.ndarray,
    suppl: Sequence[Sequence[Points]] = (),
    topline: bool | None = False,
) -> list[Points | None]:
    """One polygon per baseline ([x, y] points, network size), None where none could be made; `suppl[i]` are
    the further objects (the regions holding line i) that bound line i's room besides the other baselines."""
    bounds = np.array(im_feats.shape[::-1], dtype=float) - 1
    shapes = _objects([LineString(bl) for bl in lines])
    tasks: list[_LineTask | None] = []
    for idx, bl in enumerate(lines):
        try:
            extra = _objects([LineString(obj) for obj in (suppl[idx] if idx < len(suppl) else ())])
            others = np.concatenate([shapes[:idx], shapes[idx + 1 :], extra])
            tasks.append(_line_task(bl, others, bounds, topline, im_feats))
        except Exception as e:  # as Kraken: the line is dropped, the page goes on (htr.segment counts them)
            log.debug("no polygon for line %d: %s", idx, e)
            tasks.append(None)
    ready = [t for t in tasks if t is not None]
    paths = _carve([t.upper.cost for t in ready] + [t.lower.cost for t in ready])
    carved = iter(zip(paths[: len(ready)], paths[len(ready) :]))  # in the order of `ready`
    out: list[Points | None] = []
    for idx, task in enumerate(tasks):
        if task is None:
            out.append(None)
            continue
        up_path, low_path = next(carved)
        try:
            if up_path is None or low_path is None:
                raise ValueError("empty seam patch")
            out.append(_polygon(task, _seam(task.upper, up_path), _seam(task.lower, low_path)).tolist())
        except Exception as e:
            log.debug("no polygon for line %d: %s", idx, e)
            out.append(None)
    return out
