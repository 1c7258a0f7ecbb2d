"""`htr evaluate`: character / word error rates and line detection against ground truth.

Two ways to score:

- `--pred OUT`: ALTO written by `htr enrich` (OUT/alto/*.xml) against ground-truth ALTO/PAGE.
  Pages are paired by image file name (sha256 of the image when a name is ambiguous);
  lines are paired one-to-one by polygon IoU (greedy, highest IoU first, IoU > 0).
  Unmatched GT lines count as deletions, unmatched predicted lines as insertions.
- `--model M`: the model reads the ground-truth lines themselves (recognition only).

CER / WER are micro-averages: total edits / total reference length (characters or words).
Characters are extended grapheme clusters after NFC (as dinglehopper counts them): a letter with a
combining abbreviation mark is one character, one edit when wrong. Text is always NFC-normalised,
whitespace-folded and `&amp;` fixed (`alto.gt.normalize_text`); further normalisations are options
recorded in the output. GT lines holding `~~~` placeholders are never scored (they still absorb their
predicted lines in `--pred`).
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypedDict, Unpack

import regex
from lxml import etree
from rapidfuzz.distance import Levenshtein

from alto.gt import GTLine, GTPage, find_gt_files, is_placeholder_line, normalize_text, read_gt
from core.geometry import clamp_points
from core.hashing import file_sha256
from htr import safexml
from htr.config import RecognizeSettings
from htr.errors import ConfigError, HTRError, ModelError, XmlError
from htr.models import ModelInfo
from htr.types import Box, bbox_of, split_part

IOU_DETECTED = 0.5  # a GT line counts as found (recall / precision) when matched at IoU >= this
BASELINE_PAD = 20  # px: half-height of the shape given to a line that has a baseline but no polygon
TOP_CONFUSIONS = 20

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- text


@dataclass(frozen=True)
class Normalization:
    """Text normalisation applied to GT and prediction before comparison.

    NFC + whitespace folding + `&amp;` -> `&` are always on; the flags are opt-in.
    """

    ignore_case: bool = False
    strip_punctuation: bool = False  # Unicode categories P* (`^`, `~`, `°` are not punctuation)
    no_superscript_marker: bool = False  # drop `^`

    def apply(self, text: str) -> str:
        text = normalize_text(text)
        if self.no_superscript_marker:
            text = text.replace("^", "")
        if self.strip_punctuation:
            text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
        if self.ignore_case:
            text = text.lower()
        return " ".join(unicodedata.normalize("NFC", text).split())

    def to_dict(self) -> dict[str, Any]:
        return {"always": ["NFC", "whitespace folding", "&amp; -> &"], **asdict(self)}


def _word_ids(ref: str, hyp: str) -> tuple[list[int], list[int]]:
    vocab: dict[str, int] = {}
    r = [vocab.setdefault(w, len(vocab)) for w in ref.split()]
    h = [vocab.setdefault(w, len(vocab)) for w in hyp.split()]
    return r, h


def graphemes(text: str) -> list[str]:
    """Extended grapheme clusters of the NFC form: the units CER counts."""
    return regex.findall(r"\X", unicodedata.normalize("NFC", text))


def _cer(ref: str, hyp: str) -> tuple[int, int]:
    r, h = graphemes(ref), graphemes(hyp)
    if len(r) == len(ref) and len(h) == len(hyp):  # one code point per cluster: compare the strings
        return Levenshtein.distance(ref, hyp), len(ref)
    return Levenshtein.distance(r, h), len(r)


def _wer(ref: str, hyp: str) -> tuple[int, int]:
    r, h = _word_ids(ref, hyp)
    return Levenshtein.distance(r, h), len(r)


def cer(ref: str, hyp: str) -> tuple[int, int]:
    """(character edits, reference length) after the always-on normalisation."""
    return _cer(normalize_text(ref), normalize_text(hyp))


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) after the always-on normalisation; words split at whitespace."""
    return _wer(normalize_text(ref), normalize_text(hyp))


def micro_average(counts: Iterable[tuple[int, int]]) -> float | None:
    """Total edits / total reference length (None when the reference is empty)."""
    edits = total = 0
    for e, n in counts:
        edits += e
        total += n
    return edits / total if total else None


def macro_average(counts: Iterable[tuple[int, int]]) -> float | None:
    """Mean of the per-item rates, items with an empty reference left out (for comparison only)."""
    rates = [e / n for e, n in counts if n]
    return sum(rates) / len(rates) if rates else None


def _label(c: str) -> str:
    return "␣" if c == " " else c


def confusion_counts(pairs: Iterable[tuple[str, str]]) -> Counter[str]:
    """Character confusions of (reference, hypothesis) pairs: `a→o`, deletions `x→∅`, insertions `∅→x`."""
    out: Counter[str] = Counter()
    for ref, hyp in pairs:
        for op in Levenshtein.editops(ref, hyp):
            if op.tag == "replace":
                out[f"{_label(ref[op.src_pos])}→{_label(hyp[op.dest_pos])}"] += 1
            elif op.tag == "delete":
                out[f"{_label(ref[op.src_pos])}→∅"] += 1
            else:
                out[f"∅→{_label(hyp[op.dest_pos])}"] += 1
    return out


def confusions(pairs: Iterable[tuple[str, str]], n: int = TOP_CONFUSIONS) -> list[tuple[str, int]]:
    """The `n` most frequent confusions (count descending, then label)."""
    return _top(confusion_counts(pairs), n)


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LineScore:
    """One scored line. status: matched | missed (GT line without prediction) | extra (predicted
    line without GT) | read (`--model`)."""

    page: str
    status: str
    gt_id: str | None
    pred_id: str | None
    gt: str
    pred: str
    char_edits: int
    chars: int
    word_edits: int
    words: int
    iou: float | None = None
    box: Box | None = None  # GT line box (predicted line box for `extra`), for the report's crop

    @property
    def cer(self) -> float | None:
        return self.char_edits / self.chars if self.chars else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cer"] = _round(self.cer)
        d["iou"] = _round(self.iou)
        return d


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


@dataclass(frozen=True)
class Score:
    """Additive counts of a page or a group of pages; rates are properties (micro-averages)."""

    detection: bool = False  # True for `--pred` (line recall / precision are meaningful)
    pages: int = 0
    gt_lines: int = 0  # every TextLine of the GT files
    scored_lines: int = 0  # GT lines counted in CER (matched + missed, or read)
    placeholder_lines: int = 0  # `~~~` lines: never scored
    empty_lines: int = 0  # GT lines with empty text (skipped for --model, scored for --pred)
    no_geometry_lines: int = 0  # no polygon/baseline: skipped for --model, missed for --pred
    pred_lines: int = 0
    pred_no_geometry_lines: int = 0  # predicted lines without polygon/baseline (never matched)
    matched_lines: int = 0  # one-to-one pairs with IoU > 0
    detected_lines: int = 0  # pairs with IoU >= IOU_DETECTED
    missed_lines: int = 0  # GT lines without a predicted line (all their characters are deletions)
    extra_lines: int = 0  # predicted lines without GT (all their characters are insertions)
    char_edits: int = 0
    chars: int = 0
    word_edits: int = 0
    words: int = 0
    line_cer_sum: float = 0.0  # for the line macro-average
    line_cer_n: int = 0

    def __add__(self, other: Score) -> Score:
        vals = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            vals[f.name] = (a or b) if f.name == "detection" else a + b
        return Score(**vals)

    @property
    def cer(self) -> float | None:
        return self.char_edits / self.chars if self.chars else None

    @property
    def wer(self) -> float | None:
        return self.word_edits / self.words if self.words else None

    @property
    def cer_line_mean(self) -> float | None:
        """Macro-average over lines (each line weighs the same); reported for comparison only."""
        return self.line_cer_sum / self.line_cer_n if self.line_cer_n else None

    @property
    def line_recall(self) -> float | None:
        """Detected / GT lines that have a geometry (a degenerate GT line cannot be found)."""
        n = self.gt_lines - self.no_geometry_lines
        return self.detected_lines / n if self.detection and n > 0 else None

    @property
    def line_precision(self) -> float | None:
        """Detected / predicted lines that have a geometry."""
        n = self.pred_lines - self.pred_no_geometry_lines
        return self.detected_lines / n if self.detection and n > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("line_cer_sum", "line_cer_n")}
        for k in ("cer", "wer", "cer_line_mean", "line_recall", "line_precision"):
            d[k] = _round(getattr(self, k))
        if not self.detection:
            for k in (
                "pred_lines",
                "pred_no_geometry_lines",
                "matched_lines",
                "detected_lines",
                "missed_lines",
                "extra_lines",
                "line_recall",
                "line_precision",
            ):
                d.pop(k)
        return d


def _sum(scores: Iterable[Score]) -> Score:
    total = Score()
    for s in scores:
        total = total + s
    return total


@dataclass(frozen=True)
class PageScore:
    """Scores of one GT page."""

    key: str  # e.g. cremma-mss-19/lettre-soeur-marie/01R_P1S3SS2P118_001
    document: str  # e.g. cremma-mss-19/lettre-soeur-marie
    dataset: str  # e.g. cremma-mss-19
    gt_path: str
    image_path: str
    pred_path: str | None
    score: Score

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "score"} | self.score.to_dict()


@dataclass(frozen=True)
class EvalResult:
    """Everything `htr evaluate` found: per page, per document, per dataset and overall."""

    mode: str  # "pred" | "model"
    settings: dict[str, Any]
    pages: tuple[PageScore, ...]
    documents: tuple[tuple[str, Score], ...]
    datasets: tuple[tuple[str, Score], ...]
    overall: Score
    confusions: tuple[tuple[str, int], ...]
    lines: tuple[LineScore, ...] = ()
    model: dict[str, Any] | None = None
    errors: tuple[str, ...] = ()
    unpaired_gt: tuple[str, ...] = ()
    unpaired_pred: tuple[str, ...] = ()

    def worst_lines(self, n: int = 50) -> list[LineScore]:
        """The `n` lines with the highest CER (capped at 1, ties by edit count); empty pairs left out."""
        bad = [ln for ln in self.lines if ln.char_edits > 0]
        bad.sort(key=lambda ln: (-min(ln.char_edits / max(ln.chars, 1), 1.0), -ln.char_edits, ln.page, ln.gt_id or ""))
        return bad[:n]

    def to_dict(self, lines: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mode": self.mode,
            "settings": self.settings,
            "model": self.model,
            "overall": self.overall.to_dict(),
            "datasets": {name: s.to_dict() for name, s in self.datasets},
            "documents": {name: s.to_dict() for name, s in self.documents},
            "pages": [p.to_dict() for p in self.pages],
            "confusions": [{"confusion": c, "count": n} for c, n in self.confusions],
            "errors": list(self.errors),
            "unpaired_gt": list(self.unpaired_gt),
            "unpaired_pred": list(self.unpaired_pred),
        }
        if lines:
            d["lines"] = [ln.to_dict() for ln in self.lines]
        return d


# --------------------------------------------------------------------------- ground truth


def _xml_problem(path: Path) -> str | None:
    """Why an XML file is not ground truth (None when it is ALTO/PAGE)."""
    try:
        root = safexml.parse(path).getroot()
    except XmlError as e:  # refused (DTD, entities, size, depth), not well-formed, unreadable
        if "not well-formed XML: " in e.message:
            line, _, why = e.message.partition("not well-formed XML: ")
            return f"not well-formed XML: {line}{why}"
        return e.message if e.message.startswith("cannot read") else f"cannot read: {e.message}"
    local = etree.QName(root).localname
    return None if local in ("alto", "PcGts") else f"not ALTO or PAGE (root element <{local}>)"


def list_gt_files(sources: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """GT files under `sources` (via `find_gt_files`, ALTO preferred) and one message per file left out for a fault."""
    errors: list[str] = []
    existing = []
    for src in sources:
        if Path(src).exists():
            existing.append(Path(src))
        else:
            errors.append(f"{src}: no such file or folder")
    found = []
    kept: set[Path] = set()
    for f in find_gt_files(existing):
        if f.resolve() not in kept:  # overlapping sources: each file once
            kept.add(f.resolve())
            found.append(f)
    for src in existing:
        candidates = [src] if src.is_file() else sorted(src.rglob("*.xml"))
        for f in candidates:
            if f.resolve() in kept:
                continue
            why = _xml_problem(f)
            if why is None:  # a PAGE twin of an ALTO file: dropped on purpose
                continue
            if src.is_file() or why.startswith(("not well-formed", "cannot read")):
                errors.append(f"{f}: {why}")
    return found, errors


def _read_error(path: Path, e: Exception, what: str = "ground truth") -> str:
    """One line naming the file and why it cannot be read."""
    msg = str(e) or type(e).__name__
    if msg.startswith(f"{path}: "):
        msg = msg[len(f"{path}: ") :]
    if not isinstance(e, (ValueError, OSError, HTRError)):
        msg = f"{type(e).__name__}: {msg}"
    return f"{path}: cannot read {what}: {msg}"


def load_gt(sources: Sequence[str | Path]) -> tuple[list[GTPage], list[str]]:
    """Read every GT file under `sources`; unreadable files give one message each, the rest is kept."""
    files, errors = list_gt_files(sources)
    pages: list[GTPage] = []
    for f in files:
        try:
            pages.append(read_gt(f))
        except Exception as e:  # any fault in one file must not stop the evaluation
            errors.append(_read_error(f, e))
    return pages, errors


def _dataset_dir(doc: Path) -> Path | None:
    for d in (doc, *doc.parents):
        if (d / "htr-united.yml").is_file() or (d / "htr-united.yaml").is_file():
            return d
    return None


def _labels(pages: Sequence[GTPage]) -> dict[Path, tuple[str, str, str]]:
    """xml path -> (page key, document label, dataset label), labels relative to the folder holding the datasets."""
    docs = {p.xml_path: Path(os.path.abspath(p.document)) for p in pages}
    if not docs:
        return {}
    base = Path(os.path.commonpath([str(d) for d in docs.values()]))
    sets: dict[Path, Path] = {}
    for xml, doc in docs.items():
        ds = _dataset_dir(doc)
        if ds is None:
            ds = doc if doc == base else base / doc.relative_to(base).parts[0]
        sets[xml] = ds
    top = Path(os.path.commonpath([str(ds.parent) for ds in sets.values()]))
    out = {}
    for xml, doc in docs.items():
        xml_abs = Path(os.path.abspath(xml))
        key = xml_abs.relative_to(top).with_suffix("").as_posix()
        out[xml] = (key, doc.relative_to(top).as_posix(), sets[xml].relative_to(top).as_posix())
    return out


# --------------------------------------------------------------------------- geometry


def _shape(line: GTLine):
    """Shapely polygon of a line (from its polygon, else its buffered baseline); None without geometry."""
    import shapely
    from shapely.geometry import LineString, Polygon

    geom = None
    if len(set(line.polygon)) >= 3:
        geom = Polygon(line.polygon)
        if not geom.is_valid:
            fixed = shapely.make_valid(geom)
            parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon")]
            geom = shapely.unary_union(parts) if parts else None
    elif len(set(line.baseline)) >= 2:
        geom = LineString(line.baseline).buffer(BASELINE_PAD)
    if geom is None or geom.is_empty or geom.area <= 0:
        return None
    return geom


def match_lines(gt_shapes: Sequence[Any], pred_shapes: Sequence[Any]) -> list[tuple[int, int, float]]:
    """One-to-one (gt index, pred index, IoU) pairs, greedy by descending IoU; only IoU > 0."""
    from shapely import STRtree

    idx = [j for j, s in enumerate(pred_shapes) if s is not None]
    if not idx:
        return []
    tree = STRtree([pred_shapes[j] for j in idx])
    cands: list[tuple[float, int, int]] = []
    for i, g in enumerate(gt_shapes):
        if g is None:
            continue
        for k in tree.query(g, predicate="intersects"):
            j = idx[int(k)]
            p = pred_shapes[j]
            inter = g.intersection(p).area
            union = g.area + p.area - inter
            iou = inter / union if union > 0 else 0.0
            if iou > 0:
                cands.append((iou, i, j))
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_g: set[int] = set()
    used_p: set[int] = set()
    pairs = []
    for iou, i, j in cands:
        if i in used_g or j in used_p:
            continue
        used_g.add(i)
        used_p.add(j)
        pairs.append((i, j, iou))
    return pairs


def _box(line: GTLine) -> Box | None:
    pts = line.polygon or line.baseline
    return bbox_of(pts) if pts else None


# --------------------------------------------------------------------------- scoring


def _line(
    page: str, status: str, gt: GTLine | None, pred: GTLine | None, ref: str, hyp: str, iou: float | None = None
) -> LineScore:
    ce, cn = _cer(ref, hyp)
    we, wn = _wer(ref, hyp)
    box = _box(gt) if gt is not None else (_box(pred) if pred is not None else None)
    return LineScore(
        page,
        status,
        gt.id if gt else None,
        pred.id if pred else None,
        ref,
        hyp,
        ce,
        cn,
        we,
        wn,
        None if iou is None else round(iou, 6),
        box,
    )


class _LineCounts(TypedDict, total=False):
    """Line counts of one page, added to its Score as they are (Score's fields of the same names)."""

    gt_lines: int
    placeholder_lines: int
    empty_lines: int
    no_geometry_lines: int
    pred_lines: int
    pred_no_geometry_lines: int
    matched_lines: int
    detected_lines: int
    missed_lines: int
    extra_lines: int


def _score_of(lines: Sequence[LineScore], **counts: Unpack[_LineCounts]) -> Score:
    rated = [ln.char_edits / ln.chars for ln in lines if ln.chars]
    return Score(
        pages=1,
        scored_lines=sum(1 for ln in lines if ln.status != "extra"),
        char_edits=sum(ln.char_edits for ln in lines),
        chars=sum(ln.chars for ln in lines),
        word_edits=sum(ln.word_edits for ln in lines),
        words=sum(ln.words for ln in lines),
        line_cer_sum=sum(rated),
        line_cer_n=len(rated),
        **counts,
    )


def score_page(
    gt: GTPage, pred: GTPage, key: str = "", norm: Normalization = Normalization()
) -> tuple[Score, list[LineScore]]:
    """Compare the predicted lines of one page with its GT lines (polygon matching, see module doc)."""
    gts = list(gt.lines)
    preds = list(pred.lines)
    gshapes = [_shape(ln) for ln in gts]
    pshapes = [_shape(ln) for ln in preds]
    pairs = match_lines(gshapes, pshapes)
    placeholder = [is_placeholder_line(ln.text) for ln in gts]
    lines: list[LineScore] = []
    matched_g = {i for i, _, _ in pairs}
    matched_p = {j for _, j, _ in pairs}
    for i, j, iou in sorted(pairs):
        if not placeholder[i]:
            lines.append(
                _line(key, "matched", gts[i], preds[j], norm.apply(gts[i].text), norm.apply(preds[j].text), iou)
            )
    for i, ln in enumerate(gts):
        if i not in matched_g and not placeholder[i]:
            lines.append(_line(key, "missed", ln, None, norm.apply(ln.text), ""))
    for j, ln in enumerate(preds):
        if j not in matched_p:
            lines.append(_line(key, "extra", None, ln, "", norm.apply(ln.text)))
    score = _score_of(
        lines,
        gt_lines=len(gts),
        placeholder_lines=sum(placeholder),
        empty_lines=sum(1 for ln in gts if not ln.text),
        no_geometry_lines=sum(1 for s in gshapes if s is None),
        pred_lines=len(preds),
        pred_no_geometry_lines=sum(1 for s in pshapes if s is None),
        matched_lines=len(pairs),
        detected_lines=sum(1 for _, _, iou in pairs if iou >= IOU_DETECTED),
        missed_lines=sum(1 for ln in lines if ln.status == "missed"),
        extra_lines=len(preds) - len(matched_p),
    )
    return Score(detection=True, **{k: v for k, v in asdict(score).items() if k != "detection"}), lines


def _result(
    mode: str, settings: dict[str, Any], scored: list[tuple[PageScore, list[LineScore]]], **extra: Any
) -> EvalResult:
    pages = sorted((p for p, _ in scored), key=lambda p: p.key)
    lines = [ln for _, lns in sorted(scored, key=lambda t: t[0].key) for ln in lns]
    docs: dict[str, list[Score]] = defaultdict(list)
    sets: dict[str, list[Score]] = defaultdict(list)
    for p in pages:
        docs[p.document].append(p.score)
        sets[p.dataset].append(p.score)
    conf = confusion_counts((ln.gt, ln.pred) for ln in lines if ln.status in ("matched", "read"))
    return EvalResult(
        mode=mode,
        settings=settings,
        pages=tuple(pages),
        documents=tuple((k, _sum(v)) for k, v in sorted(docs.items())),
        datasets=tuple((k, _sum(v)) for k, v in sorted(sets.items())),
        overall=_sum(p.score for p in pages) if pages else Score(detection=mode == "pred"),
        confusions=tuple(_top(conf, TOP_CONFUSIONS)),
        lines=tuple(lines),
        **extra,
    )


def _settings(mode: str, norm: Normalization, **more: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "mode": mode,
        "normalization": norm.to_dict(),
        "average": "micro (total edits / total reference length)",
        "placeholder_lines": "excluded (lines with ~~~)",
    }
    if mode == "pred":
        s |= {
            "pairing": "image file name; sha256 of the image when a name is ambiguous",
            "line_matching": "one-to-one, greedy by descending polygon IoU, IoU > 0",
            "detection_iou": IOU_DETECTED,
            "empty_gt_lines": "matched and scored (reference length 0)",
            "confusions": "from matched line pairs (whole missed / extra lines are not listed)",
        }
    else:
        s |= {"empty_gt_lines": "excluded", "lines_without_polygon_or_baseline": "excluded"}
    return s | more


# --------------------------------------------------------------------------- --pred


def _pred_files(pred_dir: Path) -> list[Path]:
    if pred_dir.is_file():
        return [pred_dir]
    folder = pred_dir / "alto" if (pred_dir / "alto").is_dir() else pred_dir
    files = [f for f in sorted(folder.glob("*.xml")) if not f.name.startswith(".")]
    return files or [f for f in sorted(folder.rglob("*.xml")) if not f.name.startswith(".")]


def _pred_sha256(path: Path) -> str | None:
    try:
        root = safexml.parse(path).getroot()
    except XmlError:
        return None
    for el in root.iter("{*}fileIdentifier"):
        if el.get("fileIdentifierLocation") == "sha256" and (el.text or "").strip():
            return el.text.strip().lower()
    return None


def _file_sha256(path: Path) -> str | None:
    """The image's sha256, None when it cannot be read (the page is then paired by name)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def _image(page: GTPage) -> Path:
    """The page's image path, which `read_gt` always sets (resolved, or the name beside the XML)."""
    assert page.image_path is not None
    return page.image_path


def merge_split_parts(preds: Sequence[tuple[Path, GTPage]]) -> list[tuple[Path, GTPage]]:
    """One prediction per scan: the `<id>-L` / `<id>-R` ALTO of a split double page are joined.

    Both halves name the same image (coordinates are in its pixel space), so the ground truth of
    the double scan is scored against the lines of both.
    """
    from dataclasses import replace

    groups: dict[tuple[str, str], list[tuple[Path, GTPage]]] = defaultdict(list)
    out: list[tuple[Path, GTPage]] = []
    for path, p in preds:
        page_id, part = split_part(path.stem)
        if part:
            groups[(page_id, _image(p).name)].append((path, p))
        else:
            out.append((path, p))
    for (_, _), members in groups.items():
        members.sort(key=lambda m: m[0].stem)  # L before R
        first_path, first = members[0]
        lines = tuple(ln for _, p in members for ln in p.lines)
        out.append((first_path, replace(first, lines=lines)))
    return out


def pair_pages(
    gt_pages: Sequence[GTPage], preds: Sequence[tuple[Path, GTPage]]
) -> tuple[list[tuple[GTPage, Path, GTPage]], list[str]]:
    """Pair predicted pages with GT pages by image base name, by image sha256 when the name is ambiguous."""
    gt_by_name: dict[str, list[GTPage]] = defaultdict(list)
    for g in gt_pages:
        gt_by_name[_image(g).name].append(g)
    pred_by_name: dict[str, list[tuple[Path, GTPage]]] = defaultdict(list)
    for path, p in preds:
        pred_by_name[_image(p).name].append((path, p))
    pairs: list[tuple[GTPage, Path, GTPage]] = []
    notes: list[str] = []
    for name, plist in pred_by_name.items():
        glist = gt_by_name.get(name, [])
        if not glist:
            continue
        if len(glist) == 1 and len(plist) == 1:
            pairs.append((glist[0], plist[0][0], plist[0][1]))
            continue
        by_sha: dict[str | None, list[GTPage]] = defaultdict(list)
        for g in glist:
            by_sha[_file_sha256(_image(g))].append(g)
        taken: set[Path] = set()
        for path, p in plist:
            sha = _pred_sha256(path)
            cands = [g for g in by_sha.get(sha, []) if g.xml_path not in taken] if sha else []
            if len(cands) == 1:
                taken.add(cands[0].xml_path)
                pairs.append((cands[0], path, p))
            else:
                why = "has no sha256 fileIdentifier" if not sha else f"sha256 matches {len(cands)} of them"
                notes.append(
                    f"{path}: image name {name!r} is shared by {len(glist)} GT pages and "
                    f"{len(plist)} predictions; the prediction {why}: not scored"
                )
    return pairs, notes


def evaluate_predictions(
    gt_files: Sequence[str | Path],
    pred_dir: str | Path,
    *,
    normalization: Normalization = Normalization(),
    gt_pages: Sequence[GTPage] | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Score the ALTO of `pred_dir` (an `htr enrich` output folder, or a folder of ALTO files) against GT."""
    errors: list[str] = []
    if gt_pages is None:
        pages, errors = load_gt(gt_files)
    else:
        pages = list(gt_pages)
    pred_dir = Path(pred_dir)
    if not pred_dir.exists():
        raise ConfigError("no such prediction folder", path=str(pred_dir))
    preds: list[tuple[Path, GTPage]] = []
    for f in _pred_files(pred_dir):
        try:
            preds.append((f, read_gt(f, require_image=False)))
        except Exception as e:  # file-isolation boundary: one bad prediction must not stop the evaluation
            errors.append(_read_error(f, e, "prediction"))
    preds = merge_split_parts(preds)
    pairs, notes = pair_pages(pages, preds)
    errors += notes
    labels = _labels(pages)
    scored = []
    for g, ppath, p in pairs:
        key, doc, ds = labels[g.xml_path]
        if progress:
            progress(key)
        score, lines = score_page(g, p, key, normalization)
        scored.append((PageScore(key, doc, ds, str(g.xml_path), str(g.image_path), str(ppath), score), lines))
    paired_g = {g.xml_path for g, _, _ in pairs}
    paired_p = {pp for _, pp, _ in pairs}
    return _result(
        "pred",
        _settings("pred", normalization, pred_dir=str(pred_dir)),
        scored,
        errors=tuple(errors),
        unpaired_gt=tuple(sorted(str(g.xml_path) for g in pages if g.xml_path not in paired_g)),
        unpaired_pred=tuple(sorted(str(f) for f, _ in preds if f not in paired_p)),
    )


# --------------------------------------------------------------------------- --model


def has_geometry(line: GTLine) -> bool:
    """True when a line has what recognition needs: a polygon (3+ points) and a baseline (2+)."""
    return len(line.polygon) >= 3 and len(line.baseline) >= 2


def open_page_image(page: GTPage):
    """The GT page image as an 8-bit L/RGB Pillow image (any format the pipeline reads)."""
    from htr import images
    from htr.types import PageRef

    with tempfile.TemporaryDirectory(prefix="htr-eval-") as work:
        img_page = images.load(PageRef(id="gt", source=str(page.image_path)), Path(work))
        im = images.open_image(img_page)
        im.load()
        return im


def score_model_page(
    page: GTPage,
    model: ModelInfo,
    settings: RecognizeSettings,
    device: str = "cpu",
    key: str = "",
    norm: Normalization = Normalization(),
) -> tuple[Score, list[LineScore]]:
    """Recognise the GT lines of one page with `model` and score them (recognition only)."""
    from htr import recognize
    from htr.types import Line, PageSegmentation

    placeholder = empty = no_geom = 0
    used: list[GTLine] = []
    for ln in page.lines:
        if is_placeholder_line(ln.text):
            placeholder += 1
        elif not ln.text:
            empty += 1
        elif not has_geometry(ln):
            no_geom += 1
        else:
            used.append(ln)
    counts = _LineCounts(
        gt_lines=len(page.lines), placeholder_lines=placeholder, empty_lines=empty, no_geometry_lines=no_geom
    )
    if not used:
        return _score_of([], **counts), []
    im = open_page_image(page)
    w, h = im.width, im.height
    seg = PageSegmentation(
        w,
        h,
        lines=tuple(
            Line(f"l{k}", clamp_points(ln.baseline, w, h), clamp_points(ln.polygon, w, h)) for k, ln in enumerate(used)
        ),
    )
    text = recognize.run(im, seg, model, settings, device, page_id=key or str(page.xml_path))
    hyp = {lt.line_id: lt.text for lt in text.lines}
    lines = [
        _line(key, "read", ln, None, norm.apply(ln.text), norm.apply(hyp.get(f"l{k}", ""))) for k, ln in enumerate(used)
    ]
    return _score_of(lines, **counts), lines


def evaluate_model(
    gt_pages: list[GTPage],
    model: ModelInfo,
    settings: RecognizeSettings,
    device: str = "cpu",
    *,
    normalization: Normalization = Normalization(),
    progress: Progress | None = None,
    errors: Sequence[str] = (),
) -> EvalResult:
    """Recognise the GT lines of every page with `model` and score them; a page that fails is reported, not fatal."""
    labels = _labels(gt_pages)
    errs = list(errors)
    scored = []
    for page in gt_pages:
        key, doc, ds = labels[page.xml_path]
        if progress:
            progress(key)
        try:
            score, lines = score_model_page(page, model, settings, device, key, normalization)
        except ModelError:  # the model itself is unusable: no page can be scored
            raise
        except HTRError as e:
            errs.append(f"{page.xml_path}: {e}")
            continue
        except Exception as e:  # one page must not stop the evaluation
            errs.append(f"{page.xml_path}: {type(e).__name__}: {e}")
            continue
        scored.append((PageScore(key, doc, ds, str(page.xml_path), str(page.image_path), None, score), lines))
    info = {"name": model.name, "sha256": model.sha256, "path": model.path}
    if model.doi:
        info["doi"] = model.doi
    return _result(
        "model",
        _settings("model", normalization, recognize=settings.model_dump(), device=device),
        scored,
        model=info,
        errors=tuple(errs),
    )


# --------------------------------------------------------------------------- output


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def print_summary(result: EvalResult, console=None) -> None:
    """Rich tables: overall, datasets and documents; then the top confusions."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    det = result.mode == "pred"
    what = f"model {result.model['name']}" if result.model else f"predictions {result.settings.get('pred_dir', '')}"
    title = "htr evaluate — " + what
    table = Table(title=title)
    table.add_column("", overflow="fold", min_width=20)
    for col in ("pages", "lines", "CER %", "WER %", "chars") + (("recall %", "prec. %") if det else ()):
        table.add_column(col, justify="right")

    def row(name: str, s: Score, style: str | None = None) -> None:
        cells = [name, str(s.pages), str(s.scored_lines), _pct(s.cer), _pct(s.wer), str(s.chars)]
        if det:
            cells += [_pct(s.line_recall), _pct(s.line_precision)]
        table.add_row(*cells, style=style)

    for name, s in result.datasets:
        row(f"[bold]{name}[/]", s)
        for dname, ds in result.documents:
            if dname.startswith(name + "/"):
                row(f"  {dname[len(name) + 1 :]}", ds)
        for dname, ds in result.documents:
            if dname == name:
                row("  (top folder)", ds)
    table.add_section()
    row("overall", result.overall, "bold")
    console.print(table)
    norm = result.settings["normalization"]
    extra = [k for k in ("ignore_case", "strip_punctuation", "no_superscript_marker") if norm.get(k)]
    o = result.overall
    console.print(
        f"normalisation: NFC, whitespace, &amp;{'; ' + ', '.join(extra) if extra else ''} · "
        f"excluded: {o.placeholder_lines} ~~~ lines"
        + (f", {o.empty_lines} empty, {o.no_geometry_lines} without polygon/baseline" if not det else "")
        + (
            f" · {o.missed_lines} GT lines without prediction, {o.extra_lines} predicted lines without GT"
            if det
            else ""
        )
    )
    if result.confusions:
        console.print("top confusions: " + ", ".join(f"{c} ×{n}" for c, n in result.confusions[:TOP_CONFUSIONS]))


def write_json(result: EvalResult, path: Path, lines: bool = False) -> None:
    from htr import atomic

    atomic.write_text(path, json.dumps(result.to_dict(lines=lines), ensure_ascii=False, indent=1) + "\n")
