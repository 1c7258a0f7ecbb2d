"""Output folders for the portal tests, made in seconds without running Kraken, and what the tests
expect of them read straight from the ALTO with lxml (not with the code under test).

`gt_output`: one real page of ../shared/gt (tapuscorpus, typescript, 3 text blocks) as `htr enrich
--segmentation-from alto` would leave it: the ground-truth lines (polygons, baselines) and text
written by alto.writer, word boxes cut from each line's box in proportion to the characters, word
confidences that mark every 7th word as low, one named entity; its ReadingOrder puts the page-number
block first, so reading order differs from document order. Plus run.json and the index.

`synthetic_output`: generated images in two documents (a folder of PNGs, one of them a split double
page, and a 2-page TIFF whose pages differ in colour) and one ALTO with no run.json entry.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

from lxml import etree
from PIL import Image, ImageDraw

from alto.gt import read_gt
from alto.writer import ALTO_NS, build_alto, write_alto
from htr.index.entities import Entity
from htr.index.store import rebuild
from htr.report import write_report, write_run_json
from htr.types import Line, LineText, PageImage, PageRef, PageResult, PageSegmentation, PageText, Region, Word, bbox_of

GT_PAGE = "tapuscorpus/12148-btv1b53097347b/13_3536f_default.xml"
LOW_EVERY = 7  # word k (counting over the page) is low-confidence when k % LOW_EVERY == 3
A = "{%s}" % ALTO_NS


def _confidence(k: int) -> float:
    return 0.31 if k % LOW_EVERY == 3 else 0.93


def _words(text: str, box: tuple[int, int, int, int], k0: int) -> tuple[Word, ...]:
    """Words of `text` with boxes cut from the line box in proportion to the characters."""
    x0, y0, x1, y1 = box
    per_char = (x1 - x0) / max(len(text), 1)
    words, pos, k = [], 0, k0
    for w in text.split(" "):
        if w:
            a, b = x0 + round(pos * per_char), x0 + round((pos + len(w)) * per_char)
            words.append(Word(w, (a, y0, max(b, a + 1), y1), _confidence(k)))
            k += 1
        pos += len(w) + 1
    return tuple(words)


def _run(out: Path, results: list[PageResult]) -> None:
    run = {
        "output": str(out),
        "started": "2026-01-01T00:00:00+00:00",
        "settings": {"load": {"pdf_dpi": 300}},
        "models": {"recognition": {"name": "test", "sha256": "0" * 64}},
        "summary": {
            "pages": len(results),
            "done": len(results),
            "skipped": 0,
            "failed": 0,
            "ignored": 0,
            "wall_seconds": 1.0,
            "pages_per_hour": 1.0,
        },
    }
    write_run_json(out, run, results, [])
    write_report(out, run, results, [])


def _move_first_block_last(alto: Path) -> None:
    """Reading order: the page-number block (document order 2nd) first, then the main text, then the rest."""
    tree = etree.parse(str(alto))
    og = tree.getroot().find(f"{A}ReadingOrder/{A}OrderedGroup")
    refs = list(og)
    og.remove(refs[1])
    og.insert(0, refs[1])
    tree.write(str(alto), xml_declaration=True, encoding="UTF-8")


def gt_output(gt_dir: Path, out: Path) -> Path:
    """OUT holding the one real ground-truth page (see the module docstring)."""
    gt = read_gt(gt_dir / GT_PAGE)
    pid = Path(GT_PAGE).stem
    with Image.open(gt.image_path) as im:
        width, height = im.size
    regions: dict[str, list[Line]] = {}
    lines, texts, k = [], [], 0
    for n, gl in enumerate(gt.lines):
        line = Line(gl.id, gl.baseline, gl.polygon, gl.region_id)
        lines.append(line)
        regions.setdefault(gl.region_id, []).append(line)
        words = _words(gl.text, line.box, k)
        k += len(words)
        texts.append(LineText(gl.id, gl.text, 0.9, words))
    regs = tuple(Region(rid, _box_polygon([p for ln in ls for p in ln.polygon])) for rid, ls in regions.items())
    seg = PageSegmentation(width, height, regs, tuple(lines))
    text = PageText(tuple(texts))
    entity_line = texts[1]  # "dont les collections n'ont pas d'équivalent (phonothèque, Estampes,"
    start = entity_line.text.index("Estampes")
    entity = Entity("ORG", "Estampes", "Cabinet des Estampes", ((entity_line.line_id, start, start + len("Estampes")),))
    sha = hashlib.sha256(gt.image_path.read_bytes()).hexdigest()
    page = PageImage(PageRef(pid, str(gt.image_path), 0, sha), str(gt.image_path), width, height)
    alto = out / "alto" / f"{pid}.xml"
    write_alto(alto, build_alto(page, seg, text, keep_line_ids=True, entities=[entity]))
    _move_first_block_last(alto)
    (out / "text").mkdir(parents=True, exist_ok=True)
    (out / "text" / f"{pid}.txt").write_text("\n".join(t.text for t in texts) + "\n", encoding="utf-8")
    _run(out, [PageResult(pid, str(gt.image_path), 0, sha, "done", lines=len(lines), mean_confidence=0.9)])
    rebuild(out)
    return out


def _box_polygon(points: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    x0, y0, x1, y1 = bbox_of(tuple(points))
    return ((x0, y0), (x1 - 1, y0), (x1 - 1, y1 - 1), (x0, y1 - 1))


# --------------------------------------------------------------------------- expected values, read with lxml


def box(el: etree._Element) -> tuple[int, int, int, int]:
    return tuple(int(round(float(el.get(a)))) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))


def reading_order_lines(path: Path) -> list[etree._Element]:
    """TextLines in reading order: the blocks ReadingOrder names first, in its order, then the others."""
    root = etree.parse(str(path)).getroot()
    blocks = list(root.iter(A + "TextBlock"))
    order = [r.get("REF") for r in root.iter(A + "ElementRef")]
    blocks.sort(key=lambda b: order.index(b.get("ID")) if b.get("ID") in order else len(order))
    return [tl for b in blocks for tl in b.iter(A + "TextLine")]


def alto_lines(path: Path) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(line id, text, box) in reading order."""
    return [
        (tl.get("ID"), " ".join(s.get("CONTENT") for s in tl.iter(A + "String")), box(tl))
        for tl in reading_order_lines(path)
    ]


def alto_strings(path: Path) -> list[etree._Element]:
    return list(etree.parse(str(path)).getroot().iter(A + "String"))


def page_size(path: Path) -> tuple[int, int]:
    page = next(etree.parse(str(path)).getroot().iter(A + "Page"))
    return int(page.get("WIDTH")), int(page.get("HEIGHT"))


# --------------------------------------------------------------------------- synthetic collection

SYN_SIZE = (600, 800)
TIFF_COLOURS = ((200, 40, 40), (40, 40, 200))  # page 1 reddish, page 2 bluish


def _synthetic_alto(out: Path, pid: str, source: Path, index: int, texts: list[str]) -> None:
    w, h = SYN_SIZE
    lines, lts = [], []
    for n, t in enumerate(texts):
        y = 100 + 80 * n
        poly = ((50, y), (550, y), (550, y + 50), (50, y + 50))
        lid = f"{pid}_l{n + 1}"
        lines.append(Line(lid, ((50, y + 45), (550, y + 45)), poly, "r1"))
        lts.append(LineText(lid, t, 0.9, _words(t, (50, y, 551, y + 51), n * 10)))
    seg = PageSegmentation(w, h, (Region("r1", ((40, 90), (560, 90), (560, 700), (40, 700))),), tuple(lines))
    page = PageImage(PageRef(pid, str(source), index, "0" * 64), str(source), w, h)
    write_alto(out / "alto" / f"{pid}.xml", build_alto(page, seg, PageText(tuple(lts))))


def synthetic_output(root: Path) -> Path:
    """OUT with documents `lettres` (a.png, b.png, c.png split into c-L, c-R) and `registre` (a 2-page
    TIFF), plus `orphan` (an ALTO file without a run.json entry). Returns OUT (= root/out)."""
    scans, out = root / "scans", root / "out"
    (scans / "lettres").mkdir(parents=True)
    results = []
    for name, colour in (("a", (230, 230, 210)), ("b", (220, 230, 230)), ("c", (235, 225, 225))):
        src = scans / "lettres" / f"{name}.png"
        im = Image.new("RGB", SYN_SIZE, colour)
        ImageDraw.Draw(im).rectangle((50, 100, 550, 150), fill=(20, 20, 20))
        im.save(src)
        if name == "c":
            for part in ("c-L", "c-R"):
                _synthetic_alto(out, part, src, 0, [f"lettre {part} ligne une", "seconde ligne"])
            results.append(PageResult("c", str(src), 0, "0" * 64, "done", lines=4, parts=("c-L", "c-R")))
        else:
            _synthetic_alto(out, name, src, 0, [f"lettre {name} commence ici", "Paris le 12 mars 1850"])
            results.append(PageResult(name, str(src), 0, "0" * 64, "done", lines=2))
    tif = scans / "registre.tif"
    pages = [Image.new("RGB", SYN_SIZE, c) for c in TIFF_COLOURS]
    pages[0].save(tif, save_all=True, append_images=pages[1:])
    for i in range(2):
        pid = f"registre_p{i + 1:04d}"
        _synthetic_alto(out, pid, tif, i, [f"registre page {i + 1}", "notaire royal"])
        results.append(PageResult(pid, str(tif), i, "0" * 64, "done", lines=2))
    _synthetic_alto(out, "orphan", scans / "gone.png", 0, ["page sans image"])
    _run(out, results)
    rebuild(out)
    return out


# --------------------------------------------------------------------------- serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app) -> tuple[object, threading.Thread, int]:
    """Run `app` with uvicorn on a free 127.0.0.1 port in a daemon thread; (server, thread, port)."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    return srv, thread, port
