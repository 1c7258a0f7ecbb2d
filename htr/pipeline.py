"""One page through every stage: load -> preprocess -> segment -> recognize -> map -> entities -> write.

`process_page` never raises for a bad page: it returns a failed `PageResult`
whose error names the file and the reason.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from htr import atomic, images, recognize, segment, state
from htr.config import RunSettings, SegmentSettings
from htr.errors import HTRError, ModelError, is_disk_full
from htr.models import ModelInfo, file_sha256, resolve
from htr.types import (
    PART_SUFFIXES,
    PageImage,
    PageRef,
    PageResult,
    PageSegmentation,
    PageText,
    ProcessingStep,
    part_ids,
)

if TYPE_CHECKING:  # preprocess (OpenCV) is imported when a page runs, not with this module
    from PIL import Image

    from htr.preprocess import Preprocessed

SOFTWARE = "htr-enrich"


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("htr-enrich")
    except PackageNotFoundError:  # pragma: no cover - not installed
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


def warm_up(settings: RunSettings, models: Models) -> list[str]:
    """Load, once per process, every model the pages of a run will use, before the first page arrives.

    A worker calls it when it starts (flows.enrich.init_worker), so that the imports (torch,
    Kraken) and model loads overlap the Prefect API start and the planning instead of delaying
    the first page: the segmentation model (unless lines are given), the recognition model, and
    spaCy only when entities are on. The loads are the ones the stages make (same cache keys), so a
    page finds them loaded. Best effort: what fails to load is left for the page, which loads it
    again and fails with the error labelled by its stage, as without warm-up. Returns what loaded.
    """
    loaded = []
    loads: list[tuple[str, Callable[[], object]]] = []
    if not settings.segmentation_from:
        loads.append(("segmentation", lambda: segment.load(settings.segment, settings.device)))
    loads.append(("recognition", lambda: recognize.load(models.recognition, settings.device)))
    if settings.entities:
        from htr.index import entities

        loads.append(("ner", entities.load_model))
    for name, load in loads:
        try:
            load()
        except Exception:  # best-effort boundary: the page that needs this model meets the error itself
            continue
        loaded.append(name)
    return loaded


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
                **settings.segment.key(),
                **_engine(settings.segment),
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


def _engine(seg: SegmentSettings) -> dict[str, str]:
    """The segmentation engine for ALTO's Processing: named when it is htr's own (with its version)."""
    if seg.engine == "kraken":
        return {}
    from htr.fastseg import VERSION

    return {"postprocessing": f"htr.fastseg {VERSION} (Kraken's algorithm, OpenCV/NumPy)"}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- the stages of one page
#
# Each stage is a small function from frozen records to a frozen record; `process_page` runs them
# through one `StageRunner`, which times each stage and knows which one raised.

T = TypeVar("T")


@dataclass(frozen=True)
class Reading:
    """One part of a page read: its lines and their text, in the pixels of the image they were read on."""

    segmentation: PageSegmentation
    text: PageText


class StageRunner:
    """Runs the stages of one page: each call is timed (`timings`, summed when a stage runs again: parts, the
    orientation vote) and `stage` names the one running, so that an error is labelled with the stage that
    raised it. A stage that raises adds no timing."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.stage = "start"

    def run(self, name: str, fn: Callable[..., T], *args: Any, timed: bool = True, **kwargs: Any) -> T:
        self.stage = name
        t = time.perf_counter()
        value = fn(*args, **kwargs)
        if timed:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
        return value

    def finish(self) -> dict[str, float]:
        """The timings, `total` (since the runner was made) included, rounded to the millisecond."""
        self.timings["total"] = time.perf_counter() - self.started
        return {k: round(v, 3) for k, v in self.timings.items()}


def given_segmentation(ref: PageRef, im: Image.Image) -> PageSegmentation:
    """Stage `segment` with `--segmentation-from`: the page's existing lines, read instead of found."""
    from htr import reuse

    return reuse.segmentation_of(ref, im.width, im.height)


def read_parts(
    run: StageRunner,
    pre: Preprocessed,
    given: PageSegmentation | None,
    settings: RunSettings,
    models: Models,
    page_id: str,
) -> tuple[Reading, ...]:
    """Stages `segment` (unless lines are given) and `recognize`, on each part of a preprocessed page."""
    readings = []
    for p in pre.parts:
        seg = given
        if seg is None:
            seg = run.run("segment", segment.run, p.image, settings.segment, settings.device, page_id=page_id)
        text = run.run(
            "recognize",
            recognize.run,
            p.image,
            seg,
            models.recognition,
            settings.recognize,
            settings.device,
            page_id=page_id,
        )
        readings.append(Reading(seg, text))
    return tuple(readings)


def _confidence(readings: Sequence[Reading]) -> float:
    """Mean word confidence over the parts of a page (0 when nothing was read)."""
    confs = [w.confidence for r in readings for ln in r.text.lines for w in ln.words]
    return sum(confs) / len(confs) if confs else 0.0


def vote_orientation(
    run: StageRunner,
    im: Image.Image,
    pre: Preprocessed,
    readings: tuple[Reading, ...],
    settings: RunSettings,
    models: Models,
    page_id: str,
) -> tuple[Preprocessed, tuple[Reading, ...]]:
    """Upright or upside down? When the orientation was ambiguous, the page is preprocessed and read again
    turned by 180 degrees and the reading the recogniser is surer of wins (the vote is kept in the info)."""
    orient = pre.info.get("orient", {})
    if not orient.get("ambiguous"):
        return pre, readings
    from htr import preprocess

    steps = settings.preprocess.steps
    alt = run.run("preprocess", preprocess.run, im, steps, page_id=page_id, turn=orient["turn"] + 180)
    alt_readings = read_parts(run, alt, None, settings, models, page_id)
    vote = {
        "turns": [orient["turn"], (orient["turn"] + 180) % 360],
        "confidence": [round(_confidence(readings), 4), round(_confidence(alt_readings), 4)],
    }
    if vote["confidence"][1] > vote["confidence"][0]:
        pre, readings = alt, alt_readings
    info = {**pre.info, "orient": {**orient, "turn": pre.info["orient"]["turn"], "recogniser_vote": vote}}
    return replace(pre, info=info), readings


def to_original(pre: Preprocessed, readings: tuple[Reading, ...], im: Image.Image) -> tuple[Reading, ...]:
    """Stage `map`: each part's lines and words back into the pixels of the original image."""
    from htr import preprocess

    mapped = []
    for p, r in zip(pre.parts, readings):
        seg, text = preprocess.to_original(r.segmentation, r.text, p.transform, im.width, im.height)
        assert text is not None  # to_original maps the text it is given
        mapped.append(Reading(seg, text))
    return tuple(mapped)


def find_entities(reading: Reading, date: str) -> tuple[tuple, ProcessingStep]:
    """Stage `entities`: the named entities of one part, and the ALTO `Processing` entry saying how."""
    from htr.index.entities import entity_lines, ner_step
    from htr.index.entities import find_entities as find

    return tuple(find(entity_lines(reading.segmentation, reading.text))), ner_step(date=date)


def write_part(
    out: Path,
    page: PageImage,
    im: Image.Image,
    reading: Reading,
    steps: list[ProcessingStep],
    entities: tuple,
    keep_line_ids: bool,
) -> None:
    """Stage `write`: one output page's ALTO, text and thumbnail, each written atomically."""
    from alto.writer import build_alto, page_text, write_alto
    from htr.report import write_thumbnail

    pid, seg, text = page.ref.id, reading.segmentation, reading.text
    tree = build_alto(page, seg, text, steps, keep_line_ids=keep_line_ids, entities=entities)
    write_alto(state.alto_path(out, pid), tree)
    atomic.write_text(state.text_path(out, pid), page_text(seg, text))
    write_thumbnail(im, seg, state.thumb_path(out, pid))


def read_and_write(
    run: StageRunner, page: PageImage, out: Path, settings: RunSettings, models: Models, base: PageResult
) -> PageResult:
    """Every stage after `load`, on the loaded `page`; returns the page's result (done)."""
    from htr import preprocess

    ref = page.ref
    im = run.run("load", images.open_image, page)
    steps = settings.preprocess.steps
    pre = run.run("preprocess", preprocess.run, im, steps, page_id=ref.id)
    given = run.run("segment", given_segmentation, ref, im) if ref.segmentation else None
    readings = read_parts(run, pre, given, settings, models, ref.id)
    pre, readings = vote_orientation(run, im, pre, readings, settings, models, ref.id)
    mapped = run.run("map", to_original, pre, readings, im, timed=False)
    pre_step = preprocess_step(pre.info, "") if steps else None

    ids = [f"{ref.id}{p.suffix}" for p in pre.parts]
    run.run("write", state.remove_outputs, out, list(part_ids(ref.id)), keep=ids)
    for pid, reading in zip(ids, mapped):
        steps_alto = run.run("write", processing_steps, settings, models, ref)
        if pre_step is not None:
            steps_alto.insert(1, replace(pre_step, date=steps_alto[0].date))
        entities: tuple = ()
        if settings.entities:
            entities, ner = run.run("entities", find_entities, reading, steps_alto[0].date)
            steps_alto.append(ner)
        part_page = replace(page, ref=replace(ref, id=pid))
        run.run("write", write_part, out, part_page, im, reading, steps_alto, entities, bool(ref.segmentation))
    confs = [r.text.mean_confidence for r in mapped if r.text.mean_confidence is not None]
    return replace(
        base,
        status="done",
        lines=sum(len(r.segmentation.lines) for r in mapped),
        mean_confidence=sum(confs) / len(confs) if confs else None,
        parts=tuple(ids) if len(ids) > 1 else (),
        preprocess=_slim(pre.info) if steps else None,
    )


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

    Stages: load, preprocess, segment, recognize (both again, turned, when the orientation is
    ambiguous), map, entities, write; `run.json` keeps each one's time. With preprocessing,
    segmentation and recognition run on the preprocessed image and their coordinates are mapped back
    to the original image; a split double page gives two output pages, `<id>-L` and `<id>-R`. A
    failed page's error starts with the stage that raised (`recognize: …`). The page's normalised
    work image is removed and its `running` marker cleared whatever happens.
    """
    run = StageRunner()
    base = PageResult(ref.id, ref.source, ref.index, ref.sha256, "failed", key=key, worker=worker_name())
    running = state.running_path(out, ref.id)
    work = state.work_dir(out)
    page = None
    try:
        run.run("start", atomic.write_text, running, worker_name(), timed=False)
        page = run.run("load", images.load, ref, work, settings.load.pdf_dpi)
        result = read_and_write(run, page, out, settings, models, base)
    except HTRError as e:
        why = f"{ref.source}: {_os_reason(e, out)}" if is_disk_full(e) else str(e)
        result = replace(base, error=f"{run.stage}: {why}", fault=_fault(e))
    except MemoryError:
        result = replace(base, error=f"{run.stage}: {ref.source}: out of memory")
    except OSError as e:  # the output disk: full, read-only, I/O error
        result = replace(base, error=f"{run.stage}: {ref.source}: {_os_reason(e, out)}", fault=_fault(e))
    except Exception as e:  # page-isolation boundary: any fault in one page fails that page, never the collection
        result = replace(base, error=f"{run.stage}: {ref.source}: {type(e).__name__}: {e}")
    finally:
        _remove_work_file(page, work)  # the normalised image, whatever the page's fate
    result = replace(result, timings=run.finish())
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
    for name in ("denoise", *(f"denoise{s}" for s in PART_SUFFIXES)):
        if name in info:
            out[name] = info[name].get("h")
    return out
