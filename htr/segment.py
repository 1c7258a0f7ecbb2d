"""Kraken baseline segmentation: the only module that runs Kraken's layout analysis.

Kraken types stop here: `run` returns a frozen `PageSegmentation`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import Image

from core.geometry import round_points
from htr import segscale
from htr.config import SegmentSettings
from htr.errors import ModelError, SegmentationError
from htr.types import Line, PageSegmentation, Region

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The BLLA segmentation model that ships inside the kraken package."""
    return Path(str(resources.files("kraken").joinpath("blla.mlmodel")))


def model_path(settings: SegmentSettings) -> Path:
    return Path(settings.model) if settings.model else default_model_path()


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from kraken.tasks import SegmentationTaskModel

    try:
        model = SegmentationTaskModel.load_model(path)
    except Exception as e:  # kraken raises many types on bad files
        raise ModelError(f"cannot load segmentation model: {e}", path=path) from e
    return model


def load(settings: SegmentSettings, device: str = "cpu"):
    """Load (once per process) the segmentation model."""
    return _load(str(model_path(settings)), device)


def _type_of(tags) -> str:
    if not tags:
        return "default"
    value = tags.get("type", "default")
    if isinstance(value, list):  # kraken 5+: [{'type': 'default'}]
        value = value[0].get("type", "default") if value and isinstance(value[0], dict) else "default"
    return str(value)


def convert(seg, width: int, height: int) -> PageSegmentation:
    """Kraken `Segmentation` -> `PageSegmentation` (ids renumbered, points clamped into the page)."""
    regions: list[Region] = []
    region_ids: dict[str, str] = {}
    for rtype, regs in (seg.regions or {}).items():
        for reg in regs:
            if not reg.boundary or len(reg.boundary) < 3:
                continue
            rid = f"r{len(regions) + 1}"
            region_ids[reg.id] = rid
            regions.append(Region(rid, round_points(reg.boundary, width, height), str(rtype)))
    lines: list[Line] = []
    for ln in seg.lines or ():
        if not ln.baseline or len(ln.baseline) < 2 or not ln.boundary or len(ln.boundary) < 3:
            log.debug("dropping degenerate line %s", ln.id)
            continue
        reg = next((region_ids[r] for r in (ln.regions or ()) if r in region_ids), None)
        lines.append(
            Line(
                id=f"l{len(lines) + 1}",
                baseline=round_points(ln.baseline, width, height),
                polygon=round_points(ln.boundary, width, height),
                region_id=reg,
                type=_type_of(ln.tags),
            )
        )
    return PageSegmentation(width, height, tuple(regions), tuple(lines), seg.text_direction)


def to_kraken(seg: PageSegmentation, imagename: str = ""):
    """`PageSegmentation` -> kraken `Segmentation` (for recognition of given lines)."""
    from kraken.containers import BaselineLine, Segmentation

    lines = [
        BaselineLine(id=ln.id, baseline=[list(p) for p in ln.baseline], boundary=[list(p) for p in ln.polygon])
        for ln in seg.lines
    ]
    return Segmentation(
        type="baselines",
        imagename=imagename,
        text_direction=seg.text_direction,
        script_detection=False,
        lines=lines,
        regions={},
        line_orders=[],
    )


def run(
    image: Image.Image, settings: SegmentSettings, device: str = "cpu", page_id: str | None = None
) -> PageSegmentation:
    """Find regions, lines (baseline + polygon) and reading order on one page image."""
    from kraken.configs import SegmentationInferenceConfig

    model = load(settings, device)
    accelerator, devices = fabric_device(device)
    config = SegmentationInferenceConfig(
        text_direction=settings.text_direction, accelerator=accelerator, device=devices
    )

    def at(height: int | None) -> PageSegmentation:
        try:
            with _PREDICT, _network_height(model, height):
                if settings.engine == "fast":
                    seg = _fast_predict(model, image, config, page_id)
                else:
                    seg = model.predict(image, config)
        except Exception as e:  # kraken/torch/OpenCV raise many types: the page fails with SegmentationError
            raise SegmentationError(
                f"segmentation failed ({settings.engine} engine): {type(e).__name__}: {e}", page_id=page_id
            ) from e
        return convert(seg, image.width, image.height)

    if settings.height != "auto":
        return at(settings.height)
    probe = segscale.probe_height(image.width, image.height, model_height(model))
    if probe is not None:
        seg = at(probe)
        if segscale.probe_is_enough(seg, probe):
            return seg
        log.debug("%s: lines too close at %d px: segmenting at the model's height", page_id, probe)
    return at(None)


def network_output(image: Image.Image, settings: SegmentSettings, device: str = "cpu") -> dict:
    """What the (first) segmentation network makes of `image` at the settings' height (None for `auto`: the
    model's), before any post-processing (bench/postproc_speed.py): `heatmap` (classes x H x W, float32),
    `cls_map` (class -> channel), `scal_im` (the page at the network's size, uint8), `scale` (page / network)."""
    import torch
    from kraken.configs import SegmentationInferenceConfig

    model = load(settings, device)
    accelerator, devices = fabric_device(device)
    config = SegmentationInferenceConfig(
        text_direction=settings.text_direction, accelerator=accelerator, device=devices
    )
    height = None if settings.height == "auto" else settings.height
    net = model.seg_models[0]
    with _PREDICT, _network_height(model, height), torch.inference_mode():
        net.prepare_for_inference(config)
        return _network_output(net, image)


def _network_output(net, image: Image.Image) -> dict:
    """Kraken's own forward of one BLLA network (resize, network, sigmoid, upsampling to the scaled page).

    Left as Kraken runs it on purpose: a channels-last copy of the network ran 18 % faster, but its heatmaps,
    within 2e-4 of these, changed 8 of 616 lines on 15 real pages (docs/PERFORMANCE.md)."""
    with net._fabric.init_tensor():
        rets = net._compute_segmentation_map(image)
    return {k: rets[k] for k in ("heatmap", "cls_map", "scal_im", "scale")}


def model_height(model) -> int:
    """The input height of the model's (first) segmentation network: 1800 for Kraken's default."""
    return int(model.seg_models[0].input[2])


# `_network_height` changes the cached model: page threads of one process (a Dask worker with --nthreads > 1)
# take turns, so that no page runs at another's height
_PREDICT = threading.Lock()


@contextmanager
def _network_height(model, height: int | None) -> Iterator[None]:
    """Run the segmentation networks of `model` at `height` pixels (Kraken scales the page, the heatmaps and
    the polygons to it and the results back to the page), restoring the model's own afterwards."""
    nets = list(model.seg_models) if height else []
    saved = [tuple(net.input) for net in nets]
    for net, (batch, channels, _, width) in zip(nets, saved):
        net.input = (batch, channels, height, width)
    try:
        yield
    finally:
        for net, shape in zip(nets, saved):
            net.input = shape


def fabric_device(device: str) -> tuple[str, int | list[int]]:
    """`cpu` / `cuda:N` -> (accelerator, devices) as Lightning Fabric wants them."""
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return "gpu", [index]
    return device, 1


def _fast_predict(model, image: Image.Image, config, page_id: str | None = None):
    """`SegmentationTaskModel.predict` with each network's post-processing done by htr.fastseg: Kraken's forward
    (`_compute_segmentation_map`), merge and neural reading order, unchanged."""
    import torch

    with torch.inference_mode():
        segs = []
        for net in model.seg_models:
            net.prepare_for_inference(config)
            segs.append(_fast_net_predict(net, image, config, page_id))
        merged = model._merge_segmentations(segs, config)
        return model._compute_additional_line_orders(merged, config, im_size=image.size)


def _fast_net_predict(net, image: Image.Image, config, page_id: str | None = None):
    """Kraken's `_segmentation_pred` for one BLLA network, its vectorisation and polygons from htr.fastseg."""
    import shapely.geometry as geom
    from kraken.containers import BaselineLine, Segmentation
    from kraken.containers import Region as KRegion
    from kraken.lib.segmentation import is_in_region, scale_polygonal_lines, scale_regions

    from htr import fastseg

    rets = _network_output(net, image)
    heat, cls_map, scale = rets["heatmap"], rets["cls_map"], rets["scale"]
    regions: dict[str, list] = {}
    for rtype, idx in cls_map["regions"].items():
        regions[rtype] = [
            KRegion(id=f"_{uuid.uuid4()}", boundary=b, tags={"type": [{"type": rtype}]})
            for b in scale_regions(fastseg.regions(heat[idx]), scale)
        ]
    all_regions = [r for rs in regions.values() for r in rs]
    net_regions = scale_regions([r.boundary for r in all_regions], 1 / scale)  # as Kraken: back to network size
    net_shapes = [geom.Polygon(r) for r in net_regions]

    start, end = cls_map["aux"]["_start_separator"], cls_map["aux"]["_end_separator"]
    found = []
    for bl_type, idx in cls_map["baselines"].items():
        for bl in fastseg.baselines(heat[(start, end, idx), :, :], text_direction=config.text_direction[:-3]):
            found.append((bl_type, bl))
    holding = [
        [net_regions[k] for k, shape in enumerate(net_shapes) if is_in_region(geom.LineString(bl), shape)]
        for _, bl in found
    ]
    topline = bool(net.user_metadata.get("topline", False))
    pols = fastseg.polygons([bl for _, bl in found], fastseg.features(rets["scal_im"]), holding, topline=topline)
    kept = [(t, bl, pol) for (t, bl), pol in zip(found, pols) if pol is not None]
    if len(kept) < len(found):  # Kraken drops these too, with one warning a line and no page named
        log.warning(
            "%s: %d of %d baselines dropped: no polygon could be made", page_id, len(found) - len(kept), len(found)
        )
    scaled = scale_polygonal_lines([(bl, pol) for _, bl, pol in kept], scale)

    shapes = {r.id: geom.Polygon(r.boundary) for r in all_regions}
    lines = []
    for (bl_type, _, _), (bl, pol) in zip(kept, scaled):
        ls = geom.LineString(bl)
        lines.append(
            BaselineLine(
                id=f"_{uuid.uuid4()}",
                baseline=bl,
                boundary=pol,
                tags={"type": [{"type": bl_type}]},
                regions=[rid for rid, shape in shapes.items() if is_in_region(ls, shape)],
            )
        )
    if lines:
        order = config.baseline_ro_fn(lines=lines, regions=all_regions, text_direction=config.text_direction[-2:])
        lines = [lines[i] for i in order]
    return Segmentation(
        text_direction=config.text_direction,
        imagename=getattr(image, "filename", None),
        type="baselines",
        lines=lines,
        regions=regions,
        script_detection=len(cls_map["baselines"]) > 1,
        line_orders=[],
    )
