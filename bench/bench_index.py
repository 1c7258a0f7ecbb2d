"""Benchmark of htr/index (not part of the test suite): `python bench/bench_index.py`.

1. Per page, on real ground-truth pages (../shared/gt): entity extraction (spaCy + date rules,
   find_entities on the page's lines), ALTO writing with NamedEntityTags, and indexing
   (Index.replace_page: read the ALTO, one transaction) -- compared with recognition's ~10-30 s/page.
2. Search latency on an index of synthetic pages (default 100,000 pages of ~300 words, rows
   generated directly: no ALTO), over ~200 queries (words by frequency, prefixes, two-word ANDs,
   phrases): median and 99th percentile of Index.search(q, limit=20), hits located with boxes.

Results are merged under the key "index" into bench/results.json (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alto.gt import find_gt_files, read_gt  # noqa: E402
from alto.writer import build_alto, write_alto  # noqa: E402
from htr import atomic  # noqa: E402
from htr.index.entities import find_entities, load_model  # noqa: E402
from htr.index.store import RANK_WINDOW, SCHEMA_VERSION, Index  # noqa: E402
from htr.index.text import tokens  # noqa: E402
from htr.types import Line, LineText, PageImage, PageRef, PageSegmentation, PageText, Word  # noqa: E402

SHARED = Path(os.environ.get("HTR_SHARED", ROOT.parent / "shared"))
RECOGNITION_S_PER_PAGE = (10.0, 30.0)  # the pipeline's recognition, per page on CPU (README / run.json)


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# --------------------------------------------------------------------------- 1. per page


def per_page(n_pages: int, work: Path) -> dict:
    files = find_gt_files([SHARED / "gt"])
    random.Random(1).shuffle(files)
    files = files[:n_pages]
    t = time.perf_counter()
    load_model()
    load_s = time.perf_counter() - t
    ner, write, index, words = [], [], [], []
    idx = Index.open(work / "pages.sqlite")
    for k, f in enumerate(files):
        page = read_gt(f, require_image=False)
        lines = [(ln.id, ln.text) for ln in page.lines]
        t = time.perf_counter()
        ents = find_entities(lines)
        ner.append(time.perf_counter() - t)
        # an ALTO as the pipeline writes it (one String per line here: GT has no word boxes)
        ref = PageRef(f"gt{k}", str(f), 0, "")
        img = PageImage(ref, str(f), page.width, page.height)
        seg_lines = tuple(Line(ln.id, ln.baseline, ln.polygon) for ln in page.lines)
        text = PageText(
            tuple(
                LineText(ln.id, ln.text, 1.0, tuple(Word(w, (0, 0, 1, 1), 1.0) for w in ln.text.split()))
                for ln in page.lines
            )
        )
        t = time.perf_counter()
        path = work / "alto" / f"gt{k}.xml"
        write_alto(path, build_alto(img, PageSegmentation(page.width, page.height, (), seg_lines), text, entities=ents))
        write.append(time.perf_counter() - t)
        t = time.perf_counter()
        idx.replace_page(f"gt{k}", path)
        index.append(time.perf_counter() - t)
        words.append(sum(len(ln.text.split()) for ln in page.lines))
    idx.close()
    total = [a + b + c for a, b, c in zip(ner, write, index)]
    mean_total = statistics.mean(total)
    return {
        "pages": len(files),
        "words_per_page_mean": round(statistics.mean(words), 1),
        "spacy_model_load_s": round(load_s, 2),
        "entities_s_per_page": {
            "mean": round(statistics.mean(ner), 4),
            "median": round(statistics.median(ner), 4),
            "max": round(max(ner), 4),
        },
        "alto_with_entities_write_s_per_page": {"mean": round(statistics.mean(write), 4)},
        "index_replace_page_s_per_page": {
            "mean": round(statistics.mean(index), 4),
            "median": round(statistics.median(index), 4),
            "max": round(max(index), 4),
        },
        "total_s_per_page_mean": round(mean_total, 4),
        "ratio_to_recognition": {
            "recognition_s_per_page": list(RECOGNITION_S_PER_PAGE),
            "percent": [round(100 * mean_total / r, 2) for r in RECOGNITION_S_PER_PAGE],
        },
    }


# --------------------------------------------------------------------------- 2. search latency


def vocabulary() -> list[str]:
    """Words of the ground truth (real French spellings), most frequent first."""
    from collections import Counter

    c: Counter[str] = Counter()
    for f in find_gt_files([SHARED / "gt"]):
        for ln in read_gt(f, require_image=False).lines:
            for w in ln.text.split():
                w = w.strip(".,;:!?()\"'«»")
                if w and any(ch.isalpha() for ch in w) and "~" not in w:
                    c[w] += 1
    return [w for w, _ in c.most_common()]


def build_synthetic(path: Path, vocab: list[str], n_pages: int, n_words: int, seed: int = 7) -> float:
    """Fill an index with synthetic pages (rows generated directly); returns seconds taken."""
    rng = random.Random(seed)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    toks = {w: " ".join(t for t, _, _ in tokens(w)) for w in vocab}
    t0 = time.perf_counter()
    idx = Index.open(path)
    con = idx.conn
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA cache_size = -400000")
    per_line = 10
    batch_pages = 2000
    for start in range(0, n_pages, batch_pages):
        con.execute("BEGIN")
        pages, lines, words, fts = [], [], [], []
        for doc in range(start + 1, min(start + batch_pages, n_pages) + 1):
            ws = rng.choices(vocab, cum_weights=cum, k=n_words)
            pid = f"syn{doc:06d}"
            pages.append((doc, pid, f"alto/{pid}.xml", "0" * 64, 0, 0, 2500, 3500, n_words // per_line, n_words, 0.0))
            for ln in range(0, n_words, per_line):
                lw = ws[ln : ln + per_line]
                line_no = ln // per_line
                text = " ".join(lw)
                y = 100 + 60 * line_no
                lines.append((doc, line_no, f"p_{pid}_l{line_no + 1}", text, 100, y, 2000, 50))
                x, pos_c = 100, 0
                for k, w in enumerate(lw):
                    wd = 18 * len(w)
                    words.append((doc, ln + k, line_no, pos_c, pos_c + len(w), w, toks[w], None, 0, x, y, wd, 40))
                    x += wd + 12
                    pos_c += len(w) + 1
            fts.append((doc, " ".join(ws), ""))
        con.executemany("INSERT INTO pages VALUES (?,?,?,?,?,?,?,?,?,?,?)", pages)
        con.executemany("INSERT INTO lines VALUES (?,?,?,?,?,?,?,?)", lines)
        con.executemany("INSERT INTO words VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", words)
        con.executemany("INSERT INTO fts(rowid, body, extra) VALUES (?,?,?)", fts)
        con.execute("COMMIT")
    con.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    idx.close()
    return time.perf_counter() - t0


def queries(vocab: list[str], path: Path, n: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    words = [w for w in vocab if len(w) >= 3]
    out: list[tuple[str, str]] = []
    for _ in range(int(n * 0.4)):  # single words, by frequency in the text
        out.append(("word", rng.choices(vocab, weights=weights)[0]))
    for _ in range(int(n * 0.2)):  # prefixes
        w = rng.choice(words[:2000])
        out.append(("prefix", w[: max(3, len(w) - 2)] + "*"))
    for _ in range(int(n * 0.2)):  # two words, AND-ed
        out.append(("and", f"{rng.choice(words[:3000])} {rng.choice(words[:3000])}"))
    con = sqlite3.connect(str(path))
    n_pages = con.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
    while len(out) < n:  # phrases that exist: 2-3 consecutive words of a random line
        doc = rng.randint(1, n_pages)
        (text,) = con.execute("SELECT text FROM lines WHERE doc = ? AND line_no = 3", (doc,)).fetchone()
        ws = text.split()
        k = rng.randint(2, 3)
        i = rng.randint(0, len(ws) - k)
        out.append(("phrase", '"' + " ".join(ws[i : i + k]).replace('"', "") + '"'))
    con.close()
    rng.shuffle(out)
    return out


def search_latency(path: Path, qs: list[tuple[str, str]]) -> dict:
    from htr.index.errors import QueryError

    idx = Index.open(path, readonly=True)
    for _, q in qs[:5]:  # warm the page cache
        try:
            idx.search(q, limit=20)
        except QueryError:
            pass
    times: dict[str, list[float]] = {}
    hits = []
    for kind, q in qs:
        t = time.perf_counter()
        try:
            res = idx.search(q, limit=20)
        except QueryError:
            continue
        dt = (time.perf_counter() - t) * 1000
        times.setdefault(kind, []).append(dt)
        hits.append(len(res))
    idx.close()
    allt = [x for v in times.values() for x in v]
    return {
        "queries": len(allt),
        "median_ms": round(statistics.median(allt), 2),
        "p99_ms": round(pct(allt, 99), 2),
        "max_ms": round(max(allt), 2),
        "by_kind_median_ms": {k: round(statistics.median(v), 2) for k, v in sorted(times.items())},
        "by_kind_p99_ms": {k: round(pct(v, 99), 2) for k, v in sorted(times.items())},
        "queries_with_hits": sum(1 for h in hits if h),
        "goal_median_ms": 50,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=100_000, help="synthetic pages in the search index")
    ap.add_argument("--words", type=int, default=300, help="words per synthetic page")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--gt-pages", type=int, default=30, help="real GT pages for the per-page timings")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the indexes (default: a temp dir)")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"per page on {args.gt_pages} GT pages ...", flush=True)
        pp = per_page(args.gt_pages, work)
        print(json.dumps(pp, indent=1), flush=True)
        vocab = vocabulary()
        path = work / "synthetic.sqlite"
        print(f"building {args.pages} synthetic pages x {args.words} words (vocabulary {len(vocab)}) ...", flush=True)
        build_s = build_synthetic(path, vocab, args.pages, args.words)
        size = path.stat().st_size
        qs = queries(vocab, path, args.queries)
        lat = search_latency(path, qs)
        search = {
            "pages": args.pages,
            "words_per_page": args.words,
            "words": args.pages * args.words,
            "vocabulary": len(vocab),
            "build_s": round(build_s, 1),
            "index_mb": round(size / 2**20, 1),
            **lat,
        }
        print(json.dumps(search, indent=1), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    import platform

    import spacy

    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with a background training job)",
        "sqlite": sqlite3.sqlite_version,
        "spacy": spacy.__version__,
        "schema": SCHEMA_VERSION,
        "rank_window": RANK_WINDOW,
        "per_page": pp,
        "search": search,
    }
    data = {}
    if args.results.is_file():
        try:
            data = json.loads(args.results.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            data = {}
    data["index"] = result
    atomic.write_text(args.results, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    print(f"-> {args.results} (key 'index')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
