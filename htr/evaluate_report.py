"""HTML page of an evaluation: summary, top confusions and the worst lines with their image crops.

Crops are cut from the page image by the GT line polygon's box, downscaled to at most
1200 px wide and inlined as base64 JPEG, so the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from io import BytesIO
from pathlib import Path

from PIL import Image
from rapidfuzz.distance import Levenshtein

from htr.evaluate import EvalResult, LineScore, Score
from htr.types import Box

MAX_CROP_WIDTH = 1200
CROP_PAD = 4  # px around the line box

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}
.line{border-top:1px solid #ccc;padding:.8em 0}
.line img{max-width:100%;display:block;margin:.3em 0;border:1px solid #ddd}
.meta{color:#666;font-size:.85em}
.txt{font-family:ui-monospace,monospace;white-space:pre-wrap;font-size:1.05em;margin:.15em 0}
.lbl{display:inline-block;width:6em;color:#666}
.del{background:#fbb;text-decoration:line-through}
.ins{background:#bfb}
.sub{background:#fd8}
"""


def diff_html(ref: str, hyp: str) -> tuple[str, str]:
    """(GT, prediction) as HTML with `<span class="del|ins|sub">` around the differing characters."""
    g: list[str] = []
    p: list[str] = []
    for op in Levenshtein.opcodes(ref, hyp):
        a = html.escape(ref[op.src_start : op.src_end])
        b = html.escape(hyp[op.dest_start : op.dest_end])
        if op.tag == "equal":
            g.append(a)
            p.append(b)
        elif op.tag == "replace":
            g.append(f'<span class="sub">{a}</span>')
            p.append(f'<span class="sub">{b}</span>')
        elif op.tag == "delete":
            g.append(f'<span class="del">{a}</span>')
        else:
            p.append(f'<span class="ins">{b}</span>')
    return "".join(g), "".join(p)


def crop_jpeg(image: Image.Image, box: Box, max_width: int = MAX_CROP_WIDTH) -> str:
    """Base64 JPEG of `box` (padded, clipped to the image), at most `max_width` px wide."""
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 - CROP_PAD), max(0, y0 - CROP_PAD)
    x1, y1 = min(image.width, x1 + CROP_PAD), min(image.height, y1 + CROP_PAD)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} is outside the {image.width}x{image.height} image")
    crop = image.crop((x0, y0, x1, y1))
    if crop.mode not in ("L", "RGB"):
        crop = crop.convert("RGB")
    if crop.width > max_width:
        crop = crop.resize((max_width, max(1, round(crop.height * max_width / crop.width))), Image.Resampling.LANCZOS)
    buf = BytesIO()
    crop.save(buf, "JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _open(path: str) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
    except Exception:  # a missing or broken image only costs its crops
        return None


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _score_table(result: EvalResult) -> str:
    det = result.mode == "pred"
    head = ["", "pages", "lines", "CER", "WER", "chars"] + (["line recall", "line precision"] if det else [])
    rows = []

    def row(name: str, s: Score, bold: bool = False) -> None:
        cells = [name, str(s.pages), str(s.scored_lines), _pct(s.cer), _pct(s.wer), str(s.chars)]
        if det:
            cells += [_pct(s.line_recall), _pct(s.line_precision)]
        tag = "th" if bold else "td"
        rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")

    for name, s in result.datasets:
        row(name, s, bold=True)
        for dname, ds in result.documents:
            if dname == name or dname.startswith(name + "/"):
                row("\u2003" + dname, ds)
    row("overall", result.overall, bold=True)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _line_html(ln: LineScore, crop: str | None) -> str:
    g, p = diff_html(ln.gt, ln.pred)
    cer = "–" if ln.cer is None else f"{100 * ln.cer:.1f} %"
    meta = (
        f"{html.escape(ln.page)} · {html.escape(ln.gt_id or ln.pred_id or '')} · {ln.status} · CER {cer} "
        f"({ln.char_edits} edits / {ln.chars} chars)" + (f" · IoU {ln.iou:.2f}" if ln.iou is not None else "")
    )
    img = f'<img alt="line image" src="data:image/jpeg;base64,{crop}">' if crop else '<p class="meta">(no image)</p>'
    return (
        f'<div class="line"><div class="meta">{meta}</div>{img}'
        f'<div class="txt"><span class="lbl">GT</span>{g}</div>'
        f'<div class="txt"><span class="lbl">prediction</span>{p}</div></div>'
    )


def render_html(result: EvalResult, worst: int = 50) -> str:
    """The whole report as one HTML string."""
    images = {p.key: p.image_path for p in result.pages}
    lines = result.worst_lines(worst)
    crops: dict[int, str] = {}
    by_page: dict[str, list[tuple[int, Box]]] = defaultdict(list)
    for k, ln in enumerate(lines):
        if ln.box is not None:
            by_page[ln.page].append((k, ln.box))
    for page, ks in by_page.items():
        im = _open(images.get(page, ""))
        if im is None:
            continue
        for k, box in ks:
            try:
                crops[k] = crop_jpeg(im, box)
            except ValueError:
                pass
        im.close()
    title = "Evaluation — " + (f"model {result.model['name']}" if result.model else "predictions")
    norm = result.settings.get("normalization", {})
    opts = [k for k in ("ignore_case", "strip_punctuation", "no_superscript_marker") if norm.get(k)]
    parts = [
        f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if result.model:
        name, sha = html.escape(result.model["name"]), html.escape(result.model["sha256"])
        parts.append(f'<p class="meta">model {name} sha256 {sha}</p>')
    parts.append(
        "<p>CER / WER: total edits / total reference length. Normalisation: NFC, whitespace folding, &amp;amp; fixed"
        + (html.escape("; " + ", ".join(opts)) if opts else "")
        + f". Excluded: {result.overall.placeholder_lines} lines with ~~~ placeholders.</p>"
    )
    parts.append(_score_table(result))
    if result.confusions:
        parts.append("<h2>Top confusions</h2><table><tr><th>confusion</th><th>count</th></tr>")
        parts += [f"<tr><td>{html.escape(c)}</td><td>{n}</td></tr>" for c, n in result.confusions]
        parts.append("</table>")
    if result.errors:
        parts.append("<h2>Problems</h2><ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in result.errors) + "</ul>")
    parts.append(f"<h2>{len(lines)} worst lines</h2>")
    parts.append(
        '<p class="meta">GT: <span class="del">deleted</span> <span class="sub">substituted</span> · '
        'prediction: <span class="ins">inserted</span> <span class="sub">substituted</span></p>'
    )
    parts += [_line_html(ln, crops.get(k)) for k, ln in enumerate(lines)]
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(result: EvalResult, path: Path, worst: int = 50) -> None:
    """Write the report atomically."""
    from htr import atomic

    atomic.write_text(path, render_html(result, worst))
