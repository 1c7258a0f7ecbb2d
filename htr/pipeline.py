"""One page through every stage: load -> segment -> recognize -> ALTO + text + thumbnail.

`process_page` never raises for a bad page: it returns a failed `PageResult`
whose error names the file and the reason.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from htr import atomic, images, recognize, segment, state
from htr.config import RunSettings
from htr.errors import HTRError, ModelError, is_disk_full
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
            "preOperation",
            "existing segmentation read (lines, ids and reading order kept)",
            SOFTWARE,
            software_version(),
            {
                "segmentation_from": settings.segmentation_from,
                "file": Path(ref.segmentation).name,
                "sha256": ref.segmentation_sha256,
            },
            now,
        )
    else:
        layout = ProcessingStep(
            "contentGeneration",
            "baseline segmentation and reading order",
            "kraken",
            kv,
            {
                **settings.segment.model_dump(),
                "model_file": Path(models.segmentation.path).name,
                "model_sha256": models.segmentation.sha256,
            },
            now,
        )
    return [
        ProcessingStep(
            "preOperation",
            "image loading and normalisation",
            SOFTWARE,
            software_version(),
            {**settings.load.model_dump()},
            now,
        ),
        layout,
        ProcessingStep(
            "contentGeneration",
            "text recognition",
            "kraken",
            kv,
            {
                **settings.recognize.model_dump(),
                "model_name": rec.name,
                "model_file": Path(rec.path).name,
                "model_sha256": rec.sha256,
                **({"model_doi": rec.doi} if rec.doi else {}),
            },
            now,
        ),
    ]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _read(im, seg_given, settings: RunSettings, models: Models, page_id: str):
    """Segment (unless lines are given) and recognise one image: (segmentation, text, timings)."""
    t = time.perf_counter()
    seg = seg_given if seg_given is not None else segment.run(im, settings.segment, settings.device, page_id=page_id)
    t_seg = time.perf_counter() - t
    t = time.perf_counter()
    text = recognize.run(im, seg, models.recognition, settings.recognize, settings.device, page_id=page_id)
    return seg, text, {"segment": t_seg, "recognize": time.perf_counter() - t}


def _confidence(readings) -> float:
    """Mean word confidence over the parts of a page (0 when nothing was read)."""
    confs = [w.confidence for _, text, _ in readings for ln in text.lines for w in ln.words]
    return sum(confs) / len(confs) if confs else 0.0


def _add(timings: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        timings[k] = timings.get(k, 0.0) + v


def preprocess_step(info: dict, date: str) -> ProcessingStep:
    """ALTO `Processing` entry of the preprocessing stage, with what was measured on this page."""
    from htr.preprocess import VERSION

    return ProcessingStep(
        "preOperation",
        "image preprocessing (coordinates are those of the original image)",
        SOFTWARE,
        software_version(),
        {"preprocess_version": VERSION, **info},
        date,
    )


def process_page(ref: PageRef, out: Path, settings: RunSettings, models: Models, key: str) -> PageResult:
    """Run every stage on one page and write its outputs atomically; never raises for page errors.

    With preprocessing, segmentation and recognition run on the preprocessed image and their
    coordinates are mapped back to the original image; a split double page gives two output
    pages, `<id>-L` and `<id>-R`.
    """
    from alto.writer import build_alto, page_text, write_alto
    from htr import preprocess
    from htr.report import write_thumbnail

    timings: dict[str, float] = {}
    base = PageResult(ref.id, ref.source, ref.index, ref.sha256, "failed", key=key, worker=worker_name())
    t0 = time.perf_counter()
    stage = "start"
    running = state.running_path(out, ref.id)
    work = state.work_dir(out)
    page = None
    try:
        atomic.write_text(running, worker_name())
        stage = "load"
        page = images.load(ref, work, settings.load.pdf_dpi)
        im = images.open_image(page)
        timings["load"] = time.perf_counter() - t0

        steps = settings.preprocess.steps
        stage, t = "preprocess", time.perf_counter()
        pre = preprocess.run(im, steps, page_id=ref.id)
        timings["preprocess"] = time.perf_counter() - t

        given = None
        if ref.segmentation:
            from htr import reuse

            given = reuse.segmentation_of(ref, im.width, im.height)
        stage = "segment"
        readings = [_read(p.image, given, settings, models, ref.id) for p in pre.parts]
        for r in readings:
            _add(timings, r[2])
        orient = pre.info.get("orient", {})
        if orient.get("ambiguous"):
            # upright or upside down? the recogniser votes: the reading it is surer of wins
            stage, t = "preprocess", time.perf_counter()
            alt = preprocess.run(im, steps, page_id=ref.id, turn=orient["turn"] + 180)
            timings["preprocess"] += time.perf_counter() - t
            stage = "segment"
            alt_readings = [_read(p.image, None, settings, models, ref.id) for p in alt.parts]
            for r in alt_readings:
                _add(timings, r[2])
            vote = {
                "turns": [orient["turn"], (orient["turn"] + 180) % 360],
                "confidence": [round(_confidence(readings), 4), round(_confidence(alt_readings), 4)],
            }
            if vote["confidence"][1] > vote["confidence"][0]:
                pre, readings = alt, alt_readings
            pre.info["orient"] = {**orient, "turn": pre.info["orient"]["turn"], "recogniser_vote": vote}

        stage = "map"
        mapped = [
            preprocess.to_original(seg, text, p.transform, im.width, im.height)
            for p, (seg, text, _) in zip(pre.parts, readings)
        ]
        pre_step = preprocess_step(pre.info, "") if steps else None

        parts = []
        stage, t = "write", time.perf_counter()
        part_ids = [f"{ref.id}{p.suffix}" for p in pre.parts]
        state.remove_outputs(out, [ref.id, f"{ref.id}-L", f"{ref.id}-R"], keep=part_ids)
        n_lines, confs = 0, []
        for pid, (seg, text) in zip(part_ids, mapped):
            part_ref = replace(ref, id=pid)
            part_page = replace(page, ref=part_ref)
            steps_alto = processing_steps(settings, models, ref)
            if pre_step is not None:
                steps_alto.insert(1, replace(pre_step, date=steps_alto[0].date))
            entities: Sequence[object] = ()
            if settings.entities:
                from htr.index.entities import entity_lines, find_entities, ner_step

                stage, te = "entities", time.perf_counter()
                entities = find_entities(entity_lines(seg, text))
                steps_alto.append(ner_step(date=steps_alto[0].date))
                _add(timings, {"entities": time.perf_counter() - te})
                stage = "write"
            tree = build_alto(part_page, seg, text, steps_alto, keep_line_ids=bool(ref.segmentation), entities=entities)
            write_alto(state.alto_path(out, pid), tree)
            atomic.write_text(state.text_path(out, pid), page_text(seg, text))
            write_thumbnail(im, seg, state.thumb_path(out, pid))
            n_lines += len(seg.lines)
            if text is not None and text.mean_confidence is not None:
                confs.append(text.mean_confidence)
            parts.append(pid)
        timings["write"] = time.perf_counter() - t - timings.get("entities", 0.0)
        result = replace(
            base,
            status="done",
            lines=n_lines,
            mean_confidence=sum(confs) / len(confs) if confs else None,
            parts=tuple(parts) if len(parts) > 1 else (),
            preprocess=_slim(pre.info) if steps else None,
        )
    except HTRError as e:
        why = f"{ref.source}: {_os_reason(e, out)}" if is_disk_full(e) else str(e)
        result = replace(base, error=f"{stage}: {why}", fault=_fault(e))
    except MemoryError:
        result = replace(base, error=f"{stage}: {ref.source}: out of memory")
    except OSError as e:  # the output disk: full, read-only, I/O error
        result = replace(base, error=f"{stage}: {ref.source}: {_os_reason(e, out)}", fault=_fault(e))
    except Exception as e:  # a page must never stop the collection
        result = replace(base, error=f"{stage}: {ref.source}: {type(e).__name__}: {e}")
    finally:
        _remove_work_file(page, work)  # the normalised image, whatever the page's fate
    timings["total"] = time.perf_counter() - t0
    result = replace(result, timings={k: round(v, 3) for k, v in timings.items()})
    try:
        state.write_marker(out, result)
    except OSError as e:  # outputs without a marker are redone next time: say so, never raise
        result = replace(
            result,
            status="failed",
            error=result.error or f"record: {ref.source}: {_os_reason(e, out)}",
            fault=result.fault or _fault(e),
        )
    finally:
        running.unlink(missing_ok=True)
    return result


def _fault(exc: BaseException) -> str | None:
    """ "disk-full" when the page failed because the output disk is full: the run stops taking pages."""
    return "disk-full" if is_disk_full(exc) else None


def _os_reason(e: BaseException, out: Path) -> str:
    """One line: a full output disk said as such, else what the system said and about which file."""
    if is_disk_full(e):
        return f"no space left on the output's disk ({os.path.abspath(out)})"
    if isinstance(e, OSError):
        return f"{e.strerror or e}" + (f" ({e.filename})" if e.filename else "")
    return str(e)


def _remove_work_file(page, work: Path) -> None:
    """Delete the page's normalised image if `images.load` made one under `work`."""
    if page is None:
        return
    path = Path(os.path.abspath(page.path))
    if path.parent == Path(os.path.abspath(work)) and path != Path(os.path.abspath(page.ref.source)):
        path.unlink(missing_ok=True)


def _slim(info: dict) -> dict:
    """What run.json keeps of the preprocessing measurements: turn, angle, crop box, gutter."""
    out = {}
    if "orient" in info:
        out["turn"] = info["orient"].get("turn")
        if "recogniser_vote" in info["orient"]:
            out["orient_vote"] = info["orient"]["recogniser_vote"]["confidence"]
    if "deskew" in info:
        out["skew"] = info["deskew"].get("angle")
    if "crop" in info:
        out["crop"] = info["crop"].get("box")
    if "split" in info:
        out["gutter"] = info["split"].get("gutter")
    for name in ("denoise", "denoise-L", "denoise-R"):
        if name in info:
            out[name] = info[name].get("h")
    return out
