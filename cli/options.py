"""What several sub-commands share: the options of those that enrich pages (`htr enrich`, `htr watch`) and the
settings they make; the output folder the index and portal sub-commands read."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htr.errors import ConfigError

if TYPE_CHECKING:
    from htr.config import RunSettings

DEFAULT_PREPROCESS = "default"  # the measured profile (docs/PREPROCESSING.md)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that enriches pages (`enrich`, `watch`)."""
    p.add_argument("--model", default="default", help="recognition model: a name in models/manifest.json or a file")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: what cores and memory allow)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N for model inference")
    p.add_argument("--max-failures", type=float, default=0.1, help="fail the run above this ratio of failed pages")
    p.add_argument("--batch-size", type=int, default=1, help="lines per recognition batch")
    p.add_argument("--pdf-dpi", type=int, default=300, help="resolution at which PDF pages are rendered")
    p.add_argument("--cluster", help="run the page tasks on this Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--no-entities", action="store_true", help="do not tag named entities (persons, places, dates…)")
    p.add_argument(
        "--seg-height",
        default="model",
        metavar="H",
        help="height in pixels at which the segmentation network sees a page: model (the model's own, 1800 for "
        "Kraken's default: Kraken's path), auto (1200 when the page's lines allow it, else the model's: about "
        "2x faster on letters and typescripts, docs/PERFORMANCE.md), or a number (default: model)",
    )
    p.add_argument(
        "--seg-engine",
        choices=("fast", "kraken"),
        default="fast",
        help="what turns the segmentation network's output into lines: fast (Kraken's algorithm rebuilt with "
        "OpenCV/NumPy: the same lines and polygons, segmentation about 2x cheaper) or kraken (Kraken's own code) "
        "(default: fast)",
    )
    p.add_argument(
        "--preprocess",
        metavar="STEPS",
        help="image preprocessing: a profile (none, default, geometry, all) or steps such as "
        "orient,deskew,crop,split,flatten,clahe,denoise,binarize "
        f"(default: {DEFAULT_PREPROCESS}; none with --segmentation-from)",
    )


def settings_from(args: argparse.Namespace, **extra: Any) -> RunSettings:
    """RunSettings from the options `add_run_options` added (ConfigError on bad values)."""
    from htr.config import make_settings

    return make_settings(
        device=args.device,
        workers=args.workers,
        threads_per_worker=args.threads,
        max_failures=args.max_failures,
        load={"pdf_dpi": args.pdf_dpi},
        segment={"height": _seg_height(args.seg_height), "engine": args.seg_engine},
        recognize={"model": args.model, "batch_size": args.batch_size},
        entities=not args.no_entities,
        preprocess={"steps": args.preprocess or ("none" if extra.get("segmentation_from") else DEFAULT_PREPROCESS)},
        **extra,
    )


def _seg_height(value: str) -> int | str | None:
    """`--seg-height`: model -> None, auto -> "auto", a number -> int (range checked by SegmentSettings)."""
    if value in ("model", "auto"):
        return None if value == "model" else value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--seg-height: model, auto or a number of pixels (got {value!r})") from None


def output_folder(path: Path) -> Path:
    """OUT of `htr index`, `search`, `entities`, `export` and `serve`: an existing folder (ConfigError if not)."""
    if not Path(path).is_dir():
        raise ConfigError("no such output folder", path=str(path))
    return Path(path)
