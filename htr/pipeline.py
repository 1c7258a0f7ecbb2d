"""One page through every stage: load -> segment -> recognize -> ALTO + text + thumbnail.

`process_page` never raises for a bad page: it returns a failed `PageResult`
whose error names the file and the reason.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from htr import atomic, images, recognize, segment, state
from htr.config import RunSettings
from htr.errors import HTRError, ModelError
from htr.models import ModelInfo, file_sha256, resolve
from htr.types import PageRef, PageResult, ProcessingStep

SOFTWARE = "htr-enrich"


def software_version() -> str:
    from importlib.metadata import version

    try:
        return version("htr-enrich")
    except Exception:  # pragma: no cover - not installed
        return "0+unknown"


def kraken_version() -> str:
    from importlib.metadata import version

    return version("kraken")


@dataclass(frozen=True)
class Models:
    """The models a run uses, resolved and hashed once in the main process."""

    segmentation: ModelInfo
    recognition: ModelInfo

    ner: str = ""  # spaCy model name and version when entities are on

    def hashes(self) -> dict[str, str]:
        return {"segmentation": self.segmentation.sha256, "recognition": self.recognition.sha256, "ner": self.ner}

    def to_dict(self) -> dict:
        return {"segmentation": self.segmentation.__dict__, "recognition": self.recognition.__dict__, "ner": self.ner}

    @classmethod
    def from_dict(cls, d: dict) -> Models:
        return cls(ModelInfo(**d["segmentation"]), ModelInfo(**d["recognition"]), d.get("ner", ""))


def resolve_models(settings: RunSettings) -> Models:
    """Find and hash the segmentation and recognition models (raises ModelError)."""
    seg_path = segment.model_path(settings.segment)
    seg = ModelInfo(seg_path.name, str(seg_path), file_sha256(seg_path))
    ner = ""
    if settings.entities:
        from importlib.metadata import PackageNotFoundError, version

        from htr.index.entities import SPACY_MODEL

        try:  # versions from package metadata: no model load in the planning process
            ner = f"spacy-{version('spacy')}/{SPACY_MODEL}-{version(SPACY_MODEL.replace('_', '-'))}"
        except PackageNotFoundError as e:
            raise ModelError(f"named entities need {e.name} (pip install -e .): or run with --no-entities") from None
    return Models(seg, resolve(settings.recognize.model), ner)


def processing_steps(settings: RunSettings, models: Models, ref: PageRef | None = None) -> list[ProcessingStep]:
    """ALTO `Processing` entries: software, versions, model files and hashes, settings."""
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    kv = kraken_version()
    rec = models.recognition
    if ref is not None and ref.segmentation:
        layout = ProcessingStep(
            "preOperation", "existing segmentation read (lines, ids and reading order kept)", SOFTWARE,
            software_version(), {"segmentation_from": settings.segmentation_from,
                                 "file": Path(ref.segmentation).name, "sha256": ref.segmentation_sha256}, now,
        )
    else:
        layout = ProcessingStep(
            "contentGeneration", "baseline segmentation and reading order", "kraken", kv,
            {**settings.segment.model_dump(), "model_file": Path(models.segmentation.path).name,
             "model_sha256": models.segmentation.sha256}, now,
        )
    return [
        ProcessingStep(
            "preOperation", "image loading and normalisation", SOFTWARE, software_version(),
            {**settings.load.model_dump()}, now,
        ),
        layout,
        ProcessingStep(
            "contentGeneration", "text recognition", "kraken", kv,
            {**settings.recognize.model_dump(), "model_name": rec.name, "model_file": Path(rec.path).name,
             "model_sha256": rec.sha256, **({"model_doi": rec.doi} if rec.doi else {})}, now,
        ),
    ]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_page(ref: PageRef, out: Path, settings: RunSettings, models: Models, key: str) -> PageResult:
    """Run every stage on one page and write its outputs atomically; never raises for page errors."""
    from alto.writer import build_alto, page_text, write_alto
    from htr.report import write_thumbnail

    timings: dict[str, float] = {}
    base = PageResult(ref.id, ref.source, ref.index, ref.sha256, "failed", key=key, worker=worker_name())
    t0 = time.perf_counter()
    stage = "load"
    running = state.running_path(out, ref.id)
    atomic.write_text(running, worker_name())
    try:
        work = out / ".work"
        page = images.load(ref, work, settings.load.pdf_dpi)
        im = images.open_image(page)
        timings["load"] = time.perf_counter() - t0

        stage, t = "segment", time.perf_counter()
        if ref.segmentation:
            from htr import reuse

            seg = reuse.segmentation_of(ref, im.width, im.height)
        else:
            seg = segment.run(im, settings.segment, settings.device, page_id=ref.id)
        timings["segment"] = time.perf_counter() - t

        stage, t = "recognize", time.perf_counter()
        text = recognize.run(im, seg, models.recognition, settings.recognize, settings.device, page_id=ref.id)
        timings["recognize"] = time.perf_counter() - t

        steps, entities = processing_steps(settings, models, ref), ()
        if settings.entities:
            from htr.index.entities import entity_lines, find_entities, ner_step

            stage, t = "entities", time.perf_counter()
            entities = find_entities(entity_lines(seg, text))
            steps.append(ner_step(date=steps[0].date))
            timings["entities"] = time.perf_counter() - t

        stage, t = "write", time.perf_counter()
        tree = build_alto(page, seg, text, steps, keep_line_ids=bool(ref.segmentation), entities=entities)
        write_alto(state.alto_path(out, ref.id), tree)
        atomic.write_text(state.text_path(out, ref.id), page_text(seg, text))
        write_thumbnail(im, seg, state.thumb_path(out, ref.id))
        timings["write"] = time.perf_counter() - t
        if page.path != str(Path(ref.source)) and Path(page.path).parent == work:
            Path(page.path).unlink(missing_ok=True)
        result = replace(base, status="done", lines=len(seg.lines), mean_confidence=text.mean_confidence)
    except HTRError as e:
        result = replace(base, error=f"{stage}: {e}")
    except MemoryError:
        result = replace(base, error=f"{stage}: {ref.source}: out of memory")
    except Exception as e:  # a page must never stop the collection
        result = replace(base, error=f"{stage}: {ref.source}: {type(e).__name__}: {e}")
    timings["total"] = time.perf_counter() - t0
    result = replace(result, timings={k: round(v, 3) for k, v in timings.items()})
    state.write_marker(out, result)
    running.unlink(missing_ok=True)
    return result
