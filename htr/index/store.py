"""The full-text index of a collection: OUT/index.sqlite (SQLite FTS5, one file, no server).

Tables (one transaction per page, so a killed process leaves the old rows or the new ones):
- `pages`    page id, ALTO path, sha256, mtime_ns, size (what `sync` compares), page size;
- `lines`    one row per TextLine: reading-order number, ALTO line id, line text (for snippets), box;
- `words`    one row per String: reading-order position, line, character offsets in the line text,
             content, full form of a hyphenated word, box (HPOS, VPOS, WIDTH, HEIGHT in image pixels);
             the view `word_rows` shows them with page id and line id;
- `fts`      FTS5 (`unicode61 remove_diacritics 2`), one document per page: `body` = the page's words
             in reading order with hyphenated words joined, `extra` = the parts of hyphenated words;
- `entities` named entities read from the ALTO's NamedEntityTag + TAGREFS: type, surface, normalised
             form, first line, boxes.

FTS5 finds and ranks the pages (bm25); the words of each page are then matched in Python
(htr.index.text imitates the tokenizer) to give line ids, snippets and word boxes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alto.model import Page
from alto.reader import read_alto
from htr.errors import AltoError, HTRError
from htr.index.errors import IndexStoreError, QueryError
from htr.index.query import Term, build
from htr.index.text import tokens

SCHEMA_VERSION = "2"
RANK_WINDOW = 2000  # pages scored (bm25) per step of a search, see Index.search
INDEX_NAME = "index.sqlite"
_TYPE_ALIASES = {
    "PERSON": "PER",
    "PERS": "PER",
    "LOCATION": "LOC",
    "GPE": "LOC",
    "PLACE": "LOC",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "TIME": "DATE",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages(
  doc INTEGER PRIMARY KEY, page_id TEXT NOT NULL UNIQUE, alto TEXT NOT NULL, sha256 TEXT NOT NULL,
  mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, width INTEGER, height INTEGER,
  n_lines INTEGER NOT NULL, n_words INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lines(
  doc INTEGER NOT NULL, line_no INTEGER NOT NULL, line_id TEXT NOT NULL, text TEXT NOT NULL,
  hpos INTEGER, vpos INTEGER, width INTEGER, height INTEGER, PRIMARY KEY(doc, line_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS words(
  doc INTEGER NOT NULL, pos INTEGER NOT NULL, line_no INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
  content TEXT NOT NULL, toks TEXT NOT NULL, full TEXT, hyph INTEGER NOT NULL DEFAULT 0,
  hpos INTEGER NOT NULL, vpos INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
  PRIMARY KEY(doc, pos)) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, extra, tokenize='unicode61 remove_diacritics 2', prefix='2 3');
CREATE TABLE IF NOT EXISTS entities(
  doc INTEGER NOT NULL, n INTEGER NOT NULL, type TEXT NOT NULL, surface TEXT NOT NULL, normalised TEXT NOT NULL,
  line_id TEXT, boxes TEXT NOT NULL, PRIMARY KEY(doc, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_by_type ON entities(type, normalised);
CREATE VIEW IF NOT EXISTS word_rows AS
  SELECT p.page_id AS page_id, l.line_id AS line_id, w.pos AS pos, w.content AS content, w.full AS full,
         w.hpos AS hpos, w.vpos AS vpos, w.width AS width, w.height AS height
  FROM words w JOIN pages p ON p.doc = w.doc JOIN lines l ON l.doc = w.doc AND l.line_no = w.line_no;
"""
_TABLES = ("pages", "lines", "words", "fts", "entities", "meta")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PageStamp:
    """What the index knows of a page's ALTO file (to tell whether it changed)."""

    alto: str
    sha256: str
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class WordBox:
    """One word of a hit: its line, text and box in image pixels."""

    line_id: str
    text: str
    hpos: int
    vpos: int
    width: int
    height: int

    @property
    def xywh(self) -> str:
        return f"{self.hpos},{self.vpos},{self.width},{self.height}"


@dataclass(frozen=True)
class Hit:
    """One search hit: a line (or a phrase crossing lines) of a page with the matched words marked."""

    page_id: str
    line_id: str
    snippet: str  # line text with each match in [brackets]; lines of a crossing phrase joined by " / "
    boxes: tuple[WordBox, ...]
    rank: int  # 1 = best
    score: float  # bm25 relevance of the page (higher is better)
    before: str = ""  # line text before the first match
    matched: str = ""  # text from the first match to the last one
    after: str = ""  # line text after the last match
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "line_id": self.line_id,
            "snippet": self.snippet,
            "rank": self.rank,
            "score": round(self.score, 4),
            "lines": list(self.lines),
            "boxes": [
                {
                    "line_id": b.line_id,
                    "text": b.text,
                    "hpos": b.hpos,
                    "vpos": b.vpos,
                    "width": b.width,
                    "height": b.height,
                }
                for b in self.boxes
            ],
        }


@dataclass(frozen=True)
class EntityEntry:
    """An entity of the collection's index of names: occurrences grouped by type + normalised form."""

    type: str
    normalised: str
    count: int
    pages: tuple[str, ...]
    surfaces: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "normalised": self.normalised,
            "count": self.count,
            "pages": list(self.pages),
            "surfaces": list(self.surfaces),
        }


@dataclass
class SyncReport:
    """What sync/rebuild did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (page id, one-line reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "failed": [{"page_id": p, "error": e} for p, e in self.failed],
        }


@dataclass
class _PageRows:
    width: int
    height: int
    lines: list[tuple]
    words: list[tuple]
    body: str
    extra: str
    entities: list[tuple]


# --------------------------------------------------------------------------- rows of one page


def _entity_type(tag_type: str, label: str) -> str:
    t = (tag_type or "").strip().upper()
    t = _TYPE_ALIASES.get(t, t)
    return t or "MISC"


def page_rows(page: Page) -> _PageRows:
    """The rows one ALTO page gives (without the doc number)."""
    lines, words = [], []
    body: list[str] = []
    extra: list[str] = []
    line_ids: list[str] = []
    by_string: dict[str, list[tuple[int, int]]] = {}  # tag id -> (line_no, word index in page)
    flat: list[tuple[int, Any]] = []
    pos = 0
    for line_no, ln in enumerate(page.lines):
        lines.append((line_no, ln.id, ln.text, *ln.box))
        line_ids.append(ln.id)
        for w in ln.words:
            toks = " ".join(t for t, _, _ in tokens(w.content))
            words.append((pos, line_no, w.start, w.end, w.content, toks, w.full, w.hyph, *w.box))
            flat.append((line_no, w))
            for ref in w.tagrefs:
                by_string.setdefault(ref, []).append((line_no, pos))
            if w.hyph:
                extra.append(w.content)
            if w.hyph == 1 and w.full:
                body.append(w.full)
            elif w.hyph == 2 and w.full and pos > 0 and flat[pos - 1][1].hyph == 1:
                pass  # already in the full form of the first part
            else:
                body.append(w.content)
            pos += 1
    ents = []
    n = 0
    for tid, tag in page.tag_map().items():
        if tag.kind != "NamedEntityTag":
            continue
        refs = by_string.get(tid, [])
        ws = [flat[p][1] for _, p in refs]
        surface = tag.description or " ".join(w.content for w in ws)
        normalised = tag.label or surface
        boxes = [[line_ids[ln], *flat[p][1].box] for ln, p in refs]
        n += 1
        ents.append(
            (
                n,
                _entity_type(tag.type, tag.label),
                surface,
                normalised,
                line_ids[refs[0][0]] if refs else None,
                json.dumps(boxes),
            )
        )
    return _PageRows(page.width, page.height, lines, words, " ".join(body), " ".join(extra), ents)


# --------------------------------------------------------------------------- matching inside a page


def _mark(text: str, ranges: list[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for s, e in sorted(ranges):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, cur = [], 0
    for s, e in merged:
        out += [text[cur:s], "[", text[s:e], "]"]
        cur = e
    out.append(text[cur:])
    return "".join(out)


def _occurrences(words: Sequence[tuple], terms: Sequence[Term]) -> list[tuple[list[int], list[tuple[int, int, int]]]]:
    """(word indexes, (line_no, start, end) marks) of every match of every term in a page's words.

    words: rows (pos, line_no, start, end, content, toks, full, hyph, ...), `toks` = the content's
    folded tokens (stored at indexing time, so only matched words are tokenized again, for offsets).
    """
    # stream entry: (token, word indexes, token number in the word or -1 for a hyphenated full form)
    stream: list[tuple[str, tuple[int, ...], int]] = []
    raw: list[tuple[str, tuple[int, ...], int]] = []
    i, n = 0, len(words)
    while i < n:
        toks, full, hyph = words[i][5], words[i][6], words[i][7]
        if hyph == 1 and full and i + 1 < n and words[i + 1][7] == 2:
            for tok, _, _ in tokens(full):
                stream.append((tok, (i, i + 1), -1))
            for k in (i, i + 1):
                for t, tok in enumerate(words[k][5].split()):
                    raw.append((tok, (k,), t))
            i += 2
            continue
        for t, tok in enumerate(toks.split()):
            stream.append((tok, (i,), t))
        i += 1

    def marks_of(entry: tuple[str, tuple[int, ...], int]) -> list[tuple[int, int, int]]:
        _, idx, t = entry
        if t < 0:
            return [(words[k][1], words[k][2], words[k][3]) for k in idx]
        w = words[idx[0]]
        offs = tokens(w[4])
        if t < len(offs):
            return [(w[1], w[2] + offs[t][1], w[2] + offs[t][2])]
        return [(w[1], w[2], w[3])]

    found = []
    for term in terms:
        k = len(term.tokens)
        first, last = term.tokens[0], term.tokens[-1]
        for src in (stream, raw) if k == 1 else (stream,):
            for j in range(len(src) - k + 1):
                tok0 = src[j][0]
                if k > 1 and tok0 != first:
                    continue
                if any(src[j + m][0] != term.tokens[m] for m in range(1, k - 1)):
                    continue
                tok = src[j + k - 1][0]
                if tok == last or (term.prefix and tok.startswith(last)):
                    idx: list[int] = []
                    marks: list[tuple[int, int, int]] = []
                    for m in range(k):
                        for w in src[j + m][1]:
                            if w not in idx:
                                idx.append(w)
                        for mk in marks_of(src[j + m]):
                            if mk not in marks:
                                marks.append(mk)
                    found.append((idx, marks))
    # a raw-part match already covered by a full-form match adds nothing
    unique, seen = [], set()
    for idx, marks in found:
        key = tuple(sorted(marks))
        if key not in seen:
            seen.add(key)
            unique.append((idx, marks))
    unique.sort(key=lambda o: (min(o[0]), o[1]))
    return unique


# --------------------------------------------------------------------------- the index


class Index:
    """OUT/index.sqlite. `Index.open(path)`; use it from one process for writing (the flow's main
    process); any number of processes may search while it is written (WAL)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool):
        self.conn = conn
        self.path = path
        self.readonly = readonly

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Index:
        """Open (creating it unless `readonly`) the index at `path`.

        An index made by another schema version is emptied when opened for writing (it is derived
        data: `sync`/`rebuild` refill it) and refused when `readonly`.
        """
        path = Path(path)
        try:
            if readonly:
                if not path.is_file():
                    raise IndexStoreError(f"no index here: run `htr index {path.parent}` first", path=str(path))
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), check_same_thread=False)
            conn.isolation_level = None  # explicit transactions only
            conn.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            idx = cls(conn, path, readonly)
            idx._check_schema()
            return idx
        except sqlite3.Error as exc:
            raise IndexStoreError(f"cannot open index: {exc}", path=str(path)) from exc

    def _check_schema(self) -> None:
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        version = None
        if has_meta:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = row[0] if row else None
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise IndexStoreError(
                f"index schema {version or 'missing'} is not {SCHEMA_VERSION}: rebuild it with `htr index {self.path.parent}`",
                path=str(self.path),
            )
        with self._tx():
            self._create(drop=has_meta is not None)

    def _create(self, drop: bool) -> None:
        if drop:
            self.conn.execute("DROP VIEW IF EXISTS word_rows")
            for t in _TABLES:
                self.conn.execute(f"DROP TABLE IF EXISTS {t}")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction: everything inside is committed together or not at all."""
        if self.readonly:
            raise IndexStoreError("index opened read-only", path=str(self.path))
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---------------------------------------------------------------- writing

    def replace_page(self, page_id: str, alto_path: str | Path, data: bytes | None = None) -> None:
        """(Re)index one page from its ALTO file, replacing its previous rows in one transaction.

        The file is read and parsed before the transaction starts: an unreadable ALTO raises
        AltoError and leaves the index as it was.
        """
        alto_path = Path(alto_path)
        try:
            st = alto_path.stat()
            if data is None:
                data = alto_path.read_bytes()
        except OSError as exc:
            raise AltoError(f"cannot read ALTO: {exc.strerror or exc}", path=str(alto_path)) from exc
        rows = page_rows(read_alto(alto_path, data))
        stamp = PageStamp(str(alto_path), hashlib.sha256(data).hexdigest(), st.st_mtime_ns, st.st_size)
        try:
            with self._tx():
                self._put_page(page_id, stamp, rows)
        except sqlite3.Error as exc:
            raise IndexStoreError(f"cannot index page {page_id}: {exc}", path=str(self.path)) from exc

    def _put_page(self, page_id: str, stamp: PageStamp, rows: _PageRows) -> None:
        row = self.conn.execute("SELECT doc FROM pages WHERE page_id = ?", (page_id,)).fetchone()
        if row is not None:
            doc = row[0]
            self._delete_doc(doc)
        else:
            doc = (self.conn.execute("SELECT COALESCE(MAX(doc), 0) + 1 FROM pages").fetchone())[0]
        self.conn.execute(
            "INSERT INTO pages(doc, page_id, alto, sha256, mtime_ns, size, width, height, n_lines, n_words, indexed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc,
                page_id,
                stamp.alto,
                stamp.sha256,
                stamp.mtime_ns,
                stamp.size,
                rows.width,
                rows.height,
                len(rows.lines),
                len(rows.words),
                time.time(),
            ),
        )
        self._write_page_rows(doc, rows)

    def _write_page_rows(self, doc: int, rows: _PageRows) -> None:
        c = self.conn
        c.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ((doc, *r) for r in rows.lines))
        c.executemany(
            "INSERT INTO words VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ((doc, *r) for r in rows.words)
        )
        c.execute("INSERT INTO fts(rowid, body, extra) VALUES (?, ?, ?)", (doc, rows.body, rows.extra))
        c.executemany("INSERT INTO entities VALUES (?, ?, ?, ?, ?, ?, ?)", ((doc, *r) for r in rows.entities))

    def _delete_doc(self, doc: int) -> None:
        for table in ("pages", "lines", "words", "entities"):
            self.conn.execute(f"DELETE FROM {table} WHERE doc = ?", (doc,))
        self.conn.execute("DELETE FROM fts WHERE rowid = ?", (doc,))

    def remove_page(self, page_id: str) -> bool:
        """Drop a page's rows; False when it was not indexed."""
        row = self.conn.execute("SELECT doc FROM pages WHERE page_id = ?", (page_id,)).fetchone()
        if row is None:
            return False
        with self._tx():
            self._delete_doc(row[0])
        return True

    def touch_page(self, page_id: str, mtime_ns: int, size: int) -> None:
        """Record a new mtime/size for a page whose ALTO content (sha256) did not change."""
        with self._tx():
            self.conn.execute("UPDATE pages SET mtime_ns = ?, size = ? WHERE page_id = ?", (mtime_ns, size, page_id))

    # ---------------------------------------------------------------- reading

    def pages(self) -> dict[str, PageStamp]:
        """Every indexed page: its ALTO path, sha256, mtime_ns and size when indexed."""
        rows = self.conn.execute("SELECT page_id, alto, sha256, mtime_ns, size FROM pages ORDER BY page_id")
        return {r[0]: PageStamp(r[1], r[2], r[3], r[4]) for r in rows}

    def stats(self) -> dict[str, int]:
        one = lambda q: self.conn.execute(q).fetchone()[0]  # noqa: E731
        return {
            "pages": one("SELECT COUNT(*) FROM pages"),
            "lines": one("SELECT COUNT(*) FROM lines"),
            "words": one("SELECT COUNT(*) FROM words"),
            "entities": one("SELECT COUNT(*) FROM entities"),
        }

    def page_size(self, page_id: str) -> tuple[int, int] | None:
        row = self.conn.execute("SELECT width, height FROM pages WHERE page_id = ?", (page_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def search(self, query: str, limit: int = 20, offset: int = 0) -> list[Hit]:
        """Hits for `query` (see htr.index.query for the language), best pages first, lines in
        reading order within a page. Raises QueryError (one line) for a malformed query.

        Pages are ranked by bm25 within windows of RANK_WINDOW matching pages taken in collection
        order: a query matching fewer pages is fully ranked; one matching most of a huge collection
        ("de") costs one window, not a score for every page.
        """
        expr, terms = build(query)
        limit = max(0, int(limit))
        offset = max(0, int(offset))
        need = offset + limit
        hits: list[Hit] = []
        after = 0  # last rowid of the previous window
        while len(hits) < need:
            try:
                rows = self.conn.execute(
                    "SELECT rowid, bm25(fts, 1.0, 0.5) FROM fts WHERE fts MATCH ? AND rowid > ? ORDER BY rowid LIMIT ?",
                    (expr, after, RANK_WINDOW),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                msg = str(exc)
                if "fts5" in msg or "syntax" in msg or "MATCH" in msg:
                    raise QueryError(f"cannot search for {query!r}: {msg}") from exc
                raise IndexStoreError(f"search failed: {msg}", path=str(self.path)) from exc
            if not rows:
                break
            after = rows[-1][0]
            for doc, score in sorted(rows, key=lambda r: (r[1], r[0])):
                hits.extend(self._page_hits(doc, terms, -float(score)))
                if len(hits) >= need:
                    break
            if len(rows) < RANK_WINDOW:
                break
        out = []
        for n, h in enumerate(hits[offset:need], offset + 1):
            out.append(Hit(h.page_id, h.line_id, h.snippet, h.boxes, n, h.score, h.before, h.matched, h.after, h.lines))
        return out

    def _page_hits(self, doc: int, terms: Sequence[Term], score: float) -> list[Hit]:
        page = self.conn.execute("SELECT page_id FROM pages WHERE doc = ?", (doc,)).fetchone()
        if page is None:
            return []
        words = self.conn.execute(
            "SELECT pos, line_no, start, end, content, toks, full, hyph, hpos, vpos, width, height FROM words"
            " WHERE doc = ? ORDER BY pos",
            (doc,),
        ).fetchall()
        occ = _occurrences(words, terms)
        if not occ:
            return []
        lines = {
            r[0]: (r[1], r[2])
            for r in self.conn.execute("SELECT line_no, line_id, text FROM lines WHERE doc = ?", (doc,))
        }
        groups: dict[int, list[tuple[list[int], list[tuple[int, int, int]]]]] = {}
        for idx, marks in occ:
            groups.setdefault(words[min(idx)][1], []).append((idx, marks))
        hits = []
        for first_line in sorted(groups):
            idxs: list[int] = []
            marks_by_line: dict[int, list[tuple[int, int]]] = {}
            for idx, marks in groups[first_line]:
                idxs += [i for i in idx if i not in idxs]
                for ln, s, e in marks:
                    marks_by_line.setdefault(ln, []).append((s, e))
            involved = sorted(marks_by_line)
            snippet = " / ".join(_mark(lines[ln][1], marks_by_line[ln]) for ln in involved if ln in lines)
            first_text = lines[involved[0]][1] if involved[0] in lines else ""
            last_text = lines[involved[-1]][1] if involved[-1] in lines else ""
            s0 = min(s for s, _ in marks_by_line[involved[0]])
            e1 = max(e for _, e in marks_by_line[involved[-1]])
            if len(involved) == 1:
                matched = first_text[s0:e1]
            else:
                matched = first_text[s0:] + " " + last_text[:e1]
            boxes = tuple(
                WordBox(lines[words[i][1]][0], words[i][4], words[i][8], words[i][9], words[i][10], words[i][11])
                for i in sorted(idxs)
            )
            hits.append(
                Hit(
                    page[0],
                    lines[first_line][0],
                    snippet,
                    boxes,
                    0,
                    score,
                    first_text[:s0],
                    matched,
                    last_text[e1:],
                    tuple(lines[ln][0] for ln in involved),
                )
            )
        return hits

    def entities(self, type: str | None = None) -> list[EntityEntry]:  # noqa: A002 - the entity type
        """The collection's index of names: entities grouped by (type, normalised form), most frequent first."""
        sql = (
            "SELECT e.type, e.normalised, p.page_id, e.surface FROM entities e JOIN pages p ON p.doc = e.doc"
            + (" WHERE e.type = ?" if type else "")
            + " ORDER BY p.page_id, e.n"
        )
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for t, norm, pid, surface in self.conn.execute(sql, (type.upper(),) if type else ()):
            g = groups.setdefault((t, norm), {"count": 0, "pages": [], "surfaces": []})
            g["count"] += 1
            if pid not in g["pages"]:
                g["pages"].append(pid)
            if surface not in g["surfaces"]:
                g["surfaces"].append(surface)
        out = [EntityEntry(t, n, g["count"], tuple(g["pages"]), tuple(g["surfaces"])) for (t, n), g in groups.items()]
        out.sort(key=lambda e: (-e.count, e.type, e.normalised.lower()))
        return out

    def page_entities(self, page_id: str) -> list[dict[str, Any]]:
        """The entities of one page with their line and word boxes."""
        rows = self.conn.execute(
            "SELECT e.type, e.surface, e.normalised, e.line_id, e.boxes FROM entities e JOIN pages p ON p.doc = e.doc"
            " WHERE p.page_id = ? ORDER BY e.n",
            (page_id,),
        )
        return [
            {"type": t, "surface": s, "normalised": n, "line_id": ln, "boxes": json.loads(b)} for t, s, n, ln, b in rows
        ]


# --------------------------------------------------------------------------- collection-level


def index_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / INDEX_NAME


def alto_files(out_dir: str | Path) -> dict[str, Path]:
    """page id -> OUT/alto/<page-id>.xml (temp files of a killed writer are skipped)."""
    folder = Path(out_dir) / "alto"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.xml")) if p.is_file() and not p.name.startswith(".")}


def rebuild(out_dir: str | Path, path: str | Path | None = None) -> SyncReport:
    """Rebuild the index from OUT/alto/*.xml alone (any ALTO: ours, an eScriptorium export...).

    Everything happens in one transaction: a killed rebuild leaves the previous index.
    Unreadable ALTO files are reported in `failed` and left out.
    """
    report = SyncReport()
    with Index.open(path or index_path(out_dir)) as idx:
        try:
            with idx._tx():
                idx._create(drop=True)
                for pid, f in alto_files(out_dir).items():
                    try:
                        data = f.read_bytes()
                        st = f.stat()
                        rows = page_rows(read_alto(f, data))
                    except (OSError, HTRError) as exc:
                        report.failed.append((pid, str(exc)))
                        continue
                    idx._put_page(
                        pid, PageStamp(str(f), hashlib.sha256(data).hexdigest(), st.st_mtime_ns, st.st_size), rows
                    )
                    report.added.append(pid)
        except sqlite3.Error as exc:
            raise IndexStoreError(f"cannot rebuild index: {exc}", path=str(idx.path)) from exc
    return report


def sync(out_dir: str | Path, path: str | Path | None = None) -> SyncReport:
    """Bring the index up to date with OUT/alto: re-index pages whose ALTO changed (mtime+size,
    then sha256), add new ones, drop pages whose ALTO is gone. One transaction per page, so a
    killed sync loses at most the page it was on; running it again repairs the rest."""
    report = SyncReport()
    files = alto_files(out_dir)
    with Index.open(path or index_path(out_dir)) as idx:
        known = idx.pages()
        for pid in sorted(set(known) - set(files)):
            idx.remove_page(pid)
            report.removed.append(pid)
        for pid, f in files.items():
            try:
                st = f.stat()
                k = known.get(pid)
                if k is not None and k.mtime_ns == st.st_mtime_ns and k.size == st.st_size and k.alto == str(f):
                    report.unchanged += 1
                    continue
                data = f.read_bytes()
                if k is not None and k.sha256 == hashlib.sha256(data).hexdigest() and k.alto == str(f):
                    idx.touch_page(pid, st.st_mtime_ns, st.st_size)
                    report.unchanged += 1
                    continue
                idx.replace_page(pid, f, data)
            except AltoError as exc:
                report.failed.append((pid, str(exc)))
                continue
            except OSError as exc:
                report.failed.append((pid, f"{f}: {exc.strerror or exc}"))
                continue
            (report.updated if k is not None else report.added).append(pid)
    return report
