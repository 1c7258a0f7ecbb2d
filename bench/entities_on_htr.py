"""Named entities on the project's OWN recognised text (not part of the test suite):
`python bench/entities_on_htr.py`.

tests/test_index_entities.py measures find_entities on the ground-truth text of the hand-annotated
lines (tests/resources/entities/annotations.json). Here the same lines are first read by the
recognition model (default: `default`), on their ground-truth geometry (GT polygon + baseline, as
`htr evaluate --model` does: recognition only, no segmentation), and find_entities runs on what the
model read. The gold spans, given on the GT text, are carried onto the recognised text by a
character alignment (rapidfuzz Levenshtein opcodes, GT line -> recognised line):

- a GT character aligned to a recognised character (equal or substituted) maps to it; a deleted
  GT character maps nowhere; the projected span runs from the first to the last mapped character
  of the gold span (characters inserted inside it included), surrounding whitespace trimmed;
- a gold entity none of whose characters survives (all deleted) has no projected span: it stays in
  the gold count and can only be missed ("lost" in the output).

Matching is that of the test: strict = same line, same (projected) span, same type; lenient =
overlapping spans, same type. The GT-text numbers are recomputed by the same code (the identity
alignment) twice: with the whole page as NER context (exactly the test's setting) and with only the
annotated lines as context (the recognised text's setting: only annotated lines are read).

Results are merged under the key "entities_on_htr" into bench/results.json (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz.distance import Levenshtein  # noqa: E402

from alto.gt import GTLine, GTPage, read_gt  # noqa: E402
from core.geometry import clamp_points  # noqa: E402
from htr import atomic  # noqa: E402
from htr.config import RecognizeSettings  # noqa: E402
from htr.evaluate import has_geometry, open_page_image  # noqa: E402  (same line handling as htr evaluate)
from htr.index.entities import find_entities, load_model, model_info  # noqa: E402
from htr.models import ModelInfo, resolve  # noqa: E402

SHARED = Path(os.environ.get("HTR_SHARED", ROOT.parent / "shared"))
ANNOTATIONS = ROOT / "tests" / "resources" / "entities" / "annotations.json"
TYPES = ("PER", "LOC", "ORG", "DATE")

Gold = tuple[str, str, int, int, str]  # file, line id, start, end, type


# --------------------------------------------------------------------------- alignment


def char_map(ref: str, hyp: str) -> list[int | None]:
    """For each character of `ref`, the index of the `hyp` character it is aligned to (None: deleted)."""
    out: list[int | None] = [None] * len(ref)
    for op in Levenshtein.opcodes(ref, hyp):
        if op.tag in ("equal", "replace"):  # replace blocks have equal lengths (substitutions)
            for i in range(op.src_start, op.src_end):
                j = op.dest_start + (i - op.src_start)
                out[i] = j if j < op.dest_end else None
    return out


def project(span: tuple[int, int], cmap: Sequence[int | None], hyp: str) -> tuple[int, int] | None:
    """The gold span [s, e) of the reference carried onto `hyp`; None when every character was deleted."""
    hits = [cmap[i] for i in range(span[0], span[1]) if cmap[i] is not None]
    if not hits:
        return None
    s, e = min(hits), max(hits) + 1
    while s < e and hyp[s].isspace():
        s += 1
    while e > s and hyp[e - 1].isspace():
        e -= 1
    return (s, e) if s < e else None


# --------------------------------------------------------------------------- scoring


def overlaps(a: Gold, b: Gold) -> bool:
    return a[:2] == b[:2] and a[4] == b[4] and a[2] < b[3] and b[2] < a[3]


def score(gold: set[Gold], pred: set[Gold], n_gold: dict[str, int]) -> dict[str, dict]:
    """Strict / lenient precision and recall per type, as in tests/test_index_entities.py.

    `n_gold[t]`: gold entities of type t before projection (lost ones included: they are missed)."""
    out = {}
    for t in TYPES:
        g = {x for x in gold if x[4] == t}
        p = {x for x in pred if x[4] == t}
        ng = n_gold[t]
        tp = len(g & p)
        lp = sum(any(overlaps(x, y) for y in g) for x in p)
        lr = sum(any(overlaps(x, y) for x in p) for y in g)
        out[t] = {
            "gold": ng,
            "gold_lost": ng - len(g),
            "pred": len(p),
            "strict_p": round(tp / max(len(p), 1), 4),
            "strict_r": round(tp / max(ng, 1), 4),
            "lenient_p": round(lp / max(len(p), 1), 4),
            "lenient_r": round(lr / max(ng, 1), 4),
        }
    return out


def evaluate(pages: Sequence[dict], texts_of: str, context: str, files: Iterable[str] | None = None) -> dict[str, dict]:
    """Entities found on `texts_of` ("gt" | "hyp") line texts, NER context "page" (every GT line of
    the page; GT text only) or "lines" (annotated lines only), scored against the projected gold."""
    keep = set(files) if files is not None else None
    gold: set[Gold] = set()
    pred: set[Gold] = set()
    n_gold = dict.fromkeys(TYPES, 0)
    for pg in pages:
        if keep is not None and pg["file"] not in keep:
            continue
        chosen = {ln["line"] for ln in pg["annotated"]}
        for ln in pg["annotated"]:
            ref, hyp = ln["gt"], (ln["gt"] if texts_of == "gt" else ln["hyp"])
            cmap = char_map(ref, hyp)
            for s, e, t in ln["spans"]:
                n_gold[t] += 1
                pr = project((s, e), cmap, hyp)
                if pr is not None:
                    gold.add((pg["file"], ln["line"], pr[0], pr[1], t))
        if context == "page":
            assert texts_of == "gt", "only GT text has every line of the page"
            lines = [(gl.id, gl.text) for gl in pg["page"].lines]
        else:
            lines = [(ln["line"], ln["gt"] if texts_of == "gt" else ln["hyp"]) for ln in pg["annotated"]]
        for ent in find_entities(lines):
            if ent.type in TYPES:
                for lid, s, e in ent.spans:
                    if lid in chosen:
                        pred.add((pg["file"], lid, s, e, ent.type))
    return score(gold, pred, n_gold)


# --------------------------------------------------------------------------- recognition


def recognise(page: GTPage, lines: Sequence[GTLine], model: ModelInfo, settings: RecognizeSettings) -> dict[str, str]:
    """GT line id -> text read by `model` on the line's GT geometry (lines without geometry: "")."""
    from htr import recognize
    from htr.types import Line, PageSegmentation

    used = [ln for ln in lines if has_geometry(ln)]
    out = {ln.id: "" for ln in lines}
    if not used:
        return out
    im = open_page_image(page)
    w, h = im.width, im.height
    seg = PageSegmentation(
        w,
        h,
        lines=tuple(
            Line(f"l{k}", clamp_points(ln.baseline, w, h), clamp_points(ln.polygon, w, h)) for k, ln in enumerate(used)
        ),
    )
    text = recognize.run(im, seg, model, settings, "cpu", page_id=str(page.xml_path))
    hyp = {lt.line_id: lt.text for lt in text.lines}
    for k, ln in enumerate(used):
        out[ln.id] = hyp.get(f"l{k}", "")
    return out


def validation_documents(card: str | None) -> set[str]:
    """Document names listed as validation documents in the model card (never seen in training)."""
    if not card or not Path(card).is_file():
        return set()
    m = re.search(r"validation documents:\s*(.+)", Path(card).read_text(encoding="utf-8"))
    return {d.strip() for d in m.group(1).split(",")} if m else set()


# --------------------------------------------------------------------------- output


def table(blocks: Sequence[tuple[str, dict[str, dict]]]) -> str:
    head = (
        f"{'text (NER context)':<30} {'type':<5} {'gold':>4} {'lost':>4} {'pred':>4}  "
        f"{'strictP':>7} {'strictR':>7}  {'lenientP':>8} {'lenientR':>8}"
    )
    rows = [head, "-" * len(head)]
    for name, res in blocks:
        for k, t in enumerate(TYPES):
            r = res[t]
            rows.append(
                f"{name if k == 0 else '':<30} {t:<5} {r['gold']:>4} {r['gold_lost']:>4} {r['pred']:>4}  "
                f"{r['strict_p']:>7.2f} {r['strict_r']:>7.2f}  {r['lenient_p']:>8.2f} {r['lenient_r']:>8.2f}"
            )
        rows.append("")
    return "\n".join(rows).rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gt", type=Path, default=SHARED / "gt")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="JSON of recognised lines: reused when it exists for the same model sha256, else written",
    )
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--no-write", action="store_true", help="print only, leave results.json alone")
    args = ap.parse_args(argv)

    t_all = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    model = resolve(args.model)
    settings = RecognizeSettings(model=args.model)
    doc = json.loads(ANNOTATIONS.read_text(encoding="utf-8"))
    val_docs = validation_documents(model.card)

    cached: dict[str, dict[str, str]] = {}
    if args.cache and args.cache.is_file():
        c = json.loads(args.cache.read_text(encoding="utf-8"))
        if c.get("model_sha256") == model.sha256:
            cached = c["hyp"]
            print(f"recognised lines reused from {args.cache}")

    pages: list[dict] = []
    rec_s, n_rec, n_no_geom = 0.0, 0, 0
    for f in doc["files"]:
        page = read_gt(args.gt / f["file"])
        by_id = {ln.id: ln for ln in page.lines}
        order = {ln.id: k for k, ln in enumerate(page.lines)}
        ann = sorted(f["lines"], key=lambda a: order[a["line"]])  # reading order of the page
        gl = [by_id[a["line"]] for a in ann]
        n_no_geom += sum(not has_geometry(ln) for ln in gl)
        if f["file"] in cached:
            hyp = cached[f["file"]]
        else:
            t = time.perf_counter()
            hyp = recognise(page, gl, model, settings)
            rec_s += time.perf_counter() - t
            n_rec += len(gl)
            cached[f["file"]] = hyp
            print(f"  {f['file']}: {len(gl)} lines read in {time.perf_counter() - t:.1f} s", flush=True)
        pages.append(
            {
                "file": f["file"],
                "document": Path(f["file"]).parent.name,
                "page": page,
                "annotated": [
                    {"line": a["line"], "spans": a["spans"], "gt": by_id[a["line"]].text, "hyp": hyp[a["line"]]}
                    for a in ann
                ],
            }
        )
    if args.cache:
        atomic.write_text(
            args.cache, json.dumps({"model_sha256": model.sha256, "hyp": cached}, ensure_ascii=False) + "\n"
        )

    t = time.perf_counter()
    load_model()
    ner_load_s = time.perf_counter() - t
    t = time.perf_counter()
    gt_page = evaluate(pages, "gt", "page")
    gt_lines = evaluate(pages, "gt", "lines")
    htr_lines = evaluate(pages, "hyp", "lines")
    val_files = [p["file"] for p in pages if p["document"] in val_docs]
    train_files = [p["file"] for p in pages if p["document"] not in val_docs]
    gt_val = evaluate(pages, "gt", "lines", val_files)
    htr_val = evaluate(pages, "hyp", "lines", val_files)
    htr_train = evaluate(pages, "hyp", "lines", train_files)
    ner_s = time.perf_counter() - t

    all_lines = [ln for p in pages for ln in p["annotated"]]
    n_lines = len(all_lines)
    n_val_lines = sum(len(p["annotated"]) for p in pages if p["document"] in val_docs)

    def cer(lines) -> float:
        e = sum(Levenshtein.distance(ln["gt"], ln["hyp"]) for ln in lines)
        return round(e / max(sum(len(ln["gt"]) for ln in lines), 1), 4)

    cer_all = cer(all_lines)
    cer_val = cer([ln for p in pages if p["document"] in val_docs for ln in p["annotated"]])
    cer_train = cer([ln for p in pages if p["document"] not in val_docs for ln in p["annotated"]])
    total_s = time.perf_counter() - t_all

    blocks = [
        ("GT text (page context)", gt_page),
        ("GT text (annotated lines)", gt_lines),
        ("HTR text (annotated lines)", htr_lines),
        ("GT text, validation docs", gt_val),
        ("HTR text, validation docs", htr_val),
        ("HTR text, training docs", htr_train),
    ]
    print(
        f"\nentities on {n_lines} annotated lines, {len(pages)} pages; model {args.model} sha256 {model.sha256[:12]}…; "
        f"CER on these lines {100 * cer_all:.1f}% (validation docs {100 * cer_val:.1f}% on {n_val_lines} lines, "
        f"training docs {100 * cer_train:.1f}% on {n_lines - n_val_lines} lines)"
    )
    print(
        "strict: same line + same (projected) span + type; lenient: overlapping span + type; "
        "lost: gold entities whose characters were all deleted by the recognition (counted as missed)"
    )
    print(table(blocks))
    print(
        f"\nrecognition {rec_s:.1f} s for {n_rec} lines; spaCy load {ner_load_s:.1f} s; NER + scoring {ner_s:.1f} s; "
        f"total {total_s:.1f} s"
    )

    if args.no_write:
        return 0
    info = model_info()
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with a CI test run), torch threads {args.threads}",
        "what": "find_entities on the default model's recognition of the hand-annotated GT lines "
        "(tests/resources/entities), recognised on their GT geometry; gold spans projected onto the "
        "recognised text by a Levenshtein character alignment; strict = same projected span + type, "
        "lenient = overlap + type. GT-text rows are recomputed by the same code (identity alignment).",
        "model": {
            "name": model.name,
            "sha256": model.sha256,
            "card": os.path.relpath(model.card, ROOT) if model.card else None,
        },
        "spacy": info["spacy"],
        "ner_model": f"{info['model']} {info['model_version']}",
        "annotations": os.path.relpath(ANNOTATIONS, ROOT),
        "lines": n_lines,
        "pages": len(pages),
        "lines_without_geometry": n_no_geom,
        "training_overlap": {
            "note": "the model card (models/default.md) splits by document; annotated lines of training documents "
            "were seen by the model in training, so their HTR numbers are optimistic; the validation-document "
            "rows are the fair ones",
            "validation_documents": sorted({p["document"] for p in pages if p["document"] in val_docs}),
            "training_documents": sorted({p["document"] for p in pages if p["document"] not in val_docs}),
            "lines_in_validation_documents": n_val_lines,
            "lines_in_training_documents": n_lines - n_val_lines,
            "share_in_training_documents": round((n_lines - n_val_lines) / max(n_lines, 1), 4),
        },
        "cer": {"all": cer_all, "validation_documents": cer_val, "training_documents": cer_train},
        "per_type": {
            "gt_text_page_context": gt_page,
            "gt_text_annotated_lines": gt_lines,
            "htr_text_annotated_lines": htr_lines,
            "gt_text_validation_documents": gt_val,
            "htr_text_validation_documents": htr_val,
            "htr_text_training_documents": htr_train,
        },
        "timing_s": {
            "recognition": round(rec_s, 1),
            "recognised_lines": n_rec,
            "spacy_load": round(ner_load_s, 1),
            "ner_and_scoring": round(ner_s, 1),
            "total": round(total_s, 1),
        },
    }
    data = json.loads(args.results.read_text(encoding="utf-8")) if args.results.is_file() else {}
    data["entities_on_htr"] = result
    atomic.write_text(args.results, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    print(f"merged under 'entities_on_htr' into {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
