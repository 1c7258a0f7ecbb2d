"""Run outputs for people: OUT/run.json, OUT/report.html and per-page thumbnails."""

from __future__ import annotations

import html
import json
from pathlib import Path

from PIL import Image, ImageDraw

from htr import atomic
from htr.types import PageResult, PageSegmentation

THUMB_SIZE = 480


def view_href(page_id: str) -> str:
    """Link from report.html (at the root of OUT, as `htr serve` serves it) to the page in the viewer."""
    from urllib.parse import quote

    return f"view/{quote(page_id, safe='')}"


def write_thumbnail(im: Image.Image, seg: PageSegmentation, path: Path) -> None:
    """A small JPEG of the page with its line polygons (blue) and baselines (red) drawn."""
    scale = THUMB_SIZE / max(im.width, im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    thumb = im.convert("RGB")
    thumb.draft("RGB", size)
    thumb = thumb.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(thumb)
    for line in seg.lines:
        poly = [(x * scale, y * scale) for x, y in line.polygon]
        if len(poly) >= 3:
            draw.polygon(poly, outline=(30, 90, 220))
        draw.line([(x * scale, y * scale) for x, y in line.baseline], fill=(220, 30, 30), width=1)
    from io import BytesIO

    buf = BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    atomic.write_bytes(path, buf.getvalue())


def summary(results: list[PageResult], ignored: list[tuple[str, str]], wall_s: float) -> dict:
    """Counts and rates of a run (`pending`: pages the run did not get to, when it stopped early)."""
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "skipped", "failed", "pending")}
    processed = [r for r in results if r.status == "done"]
    busy = sum(r.timings.get("total", 0.0) for r in processed)
    return {
        "pages": len(results),
        **counts,
        "ignored": len(ignored),
        "wall_seconds": round(wall_s, 2),
        "pages_per_hour": round(3600 * len(processed) / wall_s, 1) if wall_s > 0 and processed else 0.0,
        "worker_seconds_per_page": round(busy / len(processed), 2) if processed else None,
        "failure_ratio": round(counts["failed"] / len(results), 4) if results else 0.0,
    }


def write_run_json(out: Path, run: dict, results: list[PageResult], ignored: list[tuple[str, str]]) -> None:
    doc = {
        **run,
        "pages": [r.to_dict() for r in results],
        "ignored": [{"source": p, "reason": why} for p, why in ignored],
    }
    atomic.write_text(out / "run.json", json.dumps(doc, indent=1, ensure_ascii=False))


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.counts td{font-size:1.3em}.failed{color:#b00}.grid{display:flex;flex-wrap:wrap;gap:12px}
.hint{color:#555}
figure{margin:0;width:240px}figure img{width:240px;border:1px solid #aaa}figcaption{font-size:.8em;word-break:break-all}
"""


def write_report(
    out: Path, run: dict, results: list[PageResult], ignored: list[tuple[str, str]], low: int = 10
) -> None:
    """A page a person can look at: counts, failures, lowest-confidence pages, thumbnails."""
    e = html.escape
    s = run["summary"]
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>HTR run report — {e(str(run.get('output', '')))}</title><style>{_CSS}</style>",
        "<h1>HTR enrichment report</h1>",
        f"<p>Started {e(run.get('started', ''))}, {s['wall_seconds']} s. Model: {e(run['models']['recognition']['name'])} "
        f"(sha256 {e(run['models']['recognition']['sha256'][:12])}…).</p>",
        "<table class='counts'><tr><th>pages</th><th>done</th><th>skipped</th><th>failed</th><th>ignored files</th>"
        "<th>pages/hour</th></tr>",
        f"<tr><td>{s['pages']}</td><td>{s['done']}</td><td>{s['skipped']}</td><td class='failed'>{s['failed']}</td>"
        f"<td>{s['ignored']}</td><td>{s['pages_per_hour']}</td></tr></table>",
    ]
    if run.get("stopped"):
        parts.append(
            f"<p class='failed'>The run stopped before {s.get('pending', 0)} page(s): {e(run['stopped'])}. "
            "Run the same command again to resume (pages done are kept).</p>"
        )
    failed = [r for r in results if r.status == "failed"]
    parts.append(f"<h2>Failures ({len(failed)})</h2>")
    if failed:
        parts.append("<table><tr><th>page</th><th>source</th><th>reason</th></tr>")
        parts += [f"<tr><td>{e(r.page_id)}</td><td>{e(r.source)}</td><td>{e(r.error or '')}</td></tr>" for r in failed]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    scored = sorted((r for r in results if r.mean_confidence is not None), key=lambda r: r.mean_confidence or 0.0)
    parts.append(
        "<h2>Lowest-confidence pages</h2><table><tr><th>page</th><th>mean word confidence</th><th>lines</th></tr>"
    )
    parts += [
        f"<tr><td>{' '.join(f'<a href={chr(39)}alto/{e(p)}.xml{chr(39)}>{e(p)}</a>' for p in r.output_ids)}</td>"
        f"<td>{r.mean_confidence:.3f}</td><td>{r.lines}</td></tr>"
        for r in scored[:low]
    ]
    parts.append("</table>")
    parts.append(
        "<h2>Pages</h2><p class='hint'>Each page opens in the reading room beside its text: run "
        f"<code>htr serve {e(str(run.get('output', 'OUT')))}</code> and open this report at "
        "<a href='http://127.0.0.1:8080/report.html'>http://127.0.0.1:8080/report.html</a>.</p>"
        "<div class='grid'>"
    )
    for r in results:
        if r.status in ("failed", "pending"):
            continue
        conf = f"{r.mean_confidence:.2f}" if r.mean_confidence is not None else "–"
        for pid in r.output_ids:
            parts.append(
                f"<figure><a href='{e(view_href(pid))}' title='read this page beside its image'>"
                f"<img loading='lazy' src='thumbs/{e(pid)}.jpg' alt='{e(pid)}'></a>"
                f"<figcaption><a href='{e(view_href(pid))}'>{e(pid)}</a> — {r.lines} lines, confidence {conf} · "
                f"<a href='text/{e(pid)}.txt'>text</a> · <a href='alto/{e(pid)}.xml'>ALTO</a></figcaption></figure>"
            )
    parts.append("</div>")
    if ignored:
        parts.append(f"<details><summary>Ignored files ({len(ignored)}): not images</summary><table>")
        parts += [f"<tr><td>{e(p)}</td><td>{e(why)}</td></tr>" for p, why in ignored]
        parts.append("</table></details>")
    parts.append("</html>")
    atomic.write_text(out / "report.html", "\n".join(parts))
