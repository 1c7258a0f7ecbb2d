"""Strict, frozen settings per stage (unknown keys are errors)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from htr.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadSettings(_Strict):
    """How source files become page images."""

    pdf_dpi: int = Field(default=300, ge=50, le=1200)


class PreprocessSettings(_Strict):
    """Image preprocessing before segmentation (htr/preprocess.py); `steps` accepts profile names."""

    steps: tuple[str, ...] = ()

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v):
        from htr.preprocess import parse_steps

        try:
            return parse_steps(v)
        except ConfigError as e:
            raise ValueError(e.message) from None


class SegmentSettings(_Strict):
    """Kraken baseline segmentation (default model shipped in the kraken package)."""

    model: str | None = None  # None: kraken's default blla model
    text_direction: Literal["horizontal-lr", "horizontal-rl", "vertical-lr", "vertical-rl"] = "horizontal-lr"
    # the height at which the page is given to the network: None: the model's own (1800 for kraken's default;
    # Kraken's path); a number: that height (fewer pixels, less CPU); "auto": chosen per page (htr.segment)
    height: int | Literal["auto"] | None = None
    # what turns the network's heatmaps into regions, baselines and polygons: "fast" (htr.fastseg: Kraken's
    # algorithm with OpenCV/NumPy, the same output on every line measured, 5-8x less CPU) or "kraken" (Kraken's own)
    engine: Literal["fast", "kraken"] = "fast"

    @field_validator("height")
    @classmethod
    def _height(cls, v):
        if isinstance(v, int) and not 600 <= v <= 4000:
            raise ValueError(f"must be between 600 and 4000 pixels (got {v})")
        return v

    def key(self) -> dict:
        """What the settings change in the output (resume key, ALTO Processing): `height` only when set, so
        runs made before the option existed keep their key; never `engine`, whose two values give the same
        output (as `batch_size` for recognition): a run resumes over pages the other engine made."""
        return self.model_dump(exclude={"height", "engine"} if self.height is None else {"engine"})


class RecognizeSettings(_Strict):
    """Kraken line recognition."""

    model: str = "default"  # a name from models/manifest.json or a path to a model file
    batch_size: int = Field(default=1, ge=1, le=256)
    padding: int = Field(default=16, ge=0, le=256)


class RunSettings(_Strict):
    """Everything one enrichment run depends on, split by what invalidates outputs."""

    load: LoadSettings = LoadSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    segment: SegmentSettings = SegmentSettings()
    recognize: RecognizeSettings = RecognizeSettings()
    device: str = "cpu"
    workers: int = Field(default=0, ge=0, le=256)  # 0: choose from cores and memory
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    max_failures: float = Field(default=0.1, ge=0.0, le=1.0)
    force: bool = False
    segmentation_from: Literal["alto", "page"] | None = None  # re-read lines of existing ALTO/PAGE files
    entities: bool = True  # named entities (spaCy fr_core_news_sm + French date rules) into the ALTO

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not v.startswith("cuda") and v != "mps":
            raise ValueError("device must be cpu, cuda, cuda:N or mps")
        return v

    @model_validator(mode="after")
    def _geometry_kept(self) -> RunSettings:
        from htr.preprocess import GEOMETRIC

        moved = [s for s in self.preprocess.steps if s in GEOMETRIC]
        if self.segmentation_from and moved:
            raise ValueError(
                f"preprocessing steps {', '.join(moved)} move pixels and cannot be combined with "
                "--segmentation-from (the existing lines' coordinates are fixed); "
                "only flatten, clahe, denoise and binarize can"
            )
        return self

    def _preprocess_key(self) -> dict:
        from htr.preprocess import VERSION

        return {"steps": list(self.preprocess.steps), "version": VERSION}

    def output_settings(self) -> dict:
        """The settings that change what a page's outputs contain (part of the resume key)."""
        return {
            "load": self.load.model_dump(),
            **({"preprocess": self._preprocess_key()} if self.preprocess.steps else {}),
            "segment": self.segment.key(),
            "recognize": self.recognize.model_dump(exclude={"batch_size"}),
            "segmentation_from": self.segmentation_from,
            "entities": self.entities,
        }


def make_settings(**kwargs) -> RunSettings:
    """Build RunSettings, turning pydantic errors into one ConfigError naming every bad key."""
    try:
        return RunSettings(**kwargs)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid settings: {msgs}") from None


def default_workers(memory_per_worker_gb: float = 2.0) -> int:
    """Workers that fit the cores this process may use and the memory available."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    try:
        import psutil

        mem_gb = psutil.virtual_memory().available / 2**30
    except (ImportError, OSError):  # pragma: no cover - no psutil, or no /proc to read
        mem_gb = 4.0
    return max(1, min(cores, int(mem_gb // memory_per_worker_gb)))


def digest(obj: object) -> str:
    """Stable sha256 of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
