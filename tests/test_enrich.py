"""End-to-end enrichment with real Kraken on real pages of ../shared/gt, through the Prefect flow.

One collection (3 real pages from 3 datasets, a truncated JPEG, a zero-byte
image, a text file) is enriched once per session; the tests read its outputs,
then re-run it to check resume. A killed run that resumes to identical outputs, with no process
left behind, is tests/test_faults.py (small one-line pages: the same check at a fraction of the cost).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from lxml import etree

from alto.gt import read_gt
from alto.validate import validate_file
from tests.conftest import GT, SCHEMAS, need

pytestmark = [pytest.mark.slow, pytest.mark.gt]

NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}

# (dataset folder under ../shared/gt, image, id the page gets in the collection)
PAGES = [
    ("cremma-mss-19/lettre-soeur-marie", "01R_P1S3SS2P118_001.jpg", "cremma_01R_P1S3SS2P118_001"),
    ("tapuscorpus/12148-btv1b10581912k", "20_21abf_default.jpg", "tapus_20_21abf_default"),
    ("lectaurep-repertoires/lectaurep-riant-4", "DAFANCH96_048MIC06480_L-0.jpg", "riant_DAFANCH96_048MIC06480_L-0"),
]
FOLDERS = {
    "cremma-mss-19/lettre-soeur-marie": "cremma",
    "tapuscorpus/12148-btv1b10581912k": "tapus",
    "lectaurep-repertoires/lectaurep-riant-4": "riant",
}


def make_collection(root: Path) -> Path:
    """Copy the real pages (renamed folders) plus broken and non-image files into root/src."""
    need(GT, "ground truth ../shared/gt")
    src = root / "src"
    for folder, image, _ in PAGES:
        dst = src / FOLDERS[folder]
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(GT / folder / image, dst / image)
    data = (GT / PAGES[0][0] / PAGES[0][1]).read_bytes()
    (src / "broken").mkdir()
    (src / "broken" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (src / "broken" / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("inventaire sommaire\n")
    return src


def run_flow(src: Path, out: Path, **settings) -> dict:
    from flows.enrich import enrich_collection

    # 2 of the 5 pages are broken on purpose: a max_failures they stay under (the flow ends Failed above it)
    return enrich_collection([str(src)], str(out), {"workers": 2, "max_failures": 0.5, **settings})


@pytest.fixture(scope="module")
def enriched(tmp_path_factory, prefect_harness):
    root = tmp_path_factory.mktemp("enrich")
    src = make_collection(root)
    out = root / "out"
    summary = run_flow(src, out)
    return src, out, summary


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_summary_counts_pages_failures_and_ignored(enriched):
    _, out, summary = enriched
    assert (summary["pages"], summary["done"], summary["failed"], summary["ignored"]) == (5, 3, 2, 1)
    doc = run_json(out)
    by_id = {p["page_id"]: p for p in doc["pages"]}
    for _, _, pid in PAGES:
        assert by_id[pid]["status"] == "done"
        assert set(by_id[pid]["timings"]) >= {"load", "segment", "recognize", "write", "total"}
        assert len(by_id[pid]["sha256"]) == 64
    assert "truncated.jpg" in by_id["broken_truncated"]["error"]
    assert "empty" in by_id["broken_empty"]["error"].lower() and "empty.jpg" in by_id["broken_empty"]["error"]
    assert doc["ignored"] == [{"source": str(enriched[0] / "notes.txt"), "reason": "not an image"}]


def test_alto_valid_against_alto_4_4_xsd_and_rules(enriched):
    _, out, _ = enriched
    xsd = need(SCHEMAS / "alto-4-4.xsd", "ALTO 4.4 schema")
    files = sorted((out / "alto").glob("*.xml"))
    assert [f.stem for f in files] == sorted(p[2] for p in PAGES)
    for f in files:
        assert validate_file(f, xsd_path=xsd) == [], f


def test_line_counts_near_ground_truth_and_text_read(enriched):
    _, out, _ = enriched
    for folder, image, pid in PAGES:
        gt = read_gt(GT / folder / image.replace(".jpg", ".xml"))
        doc = etree.parse(str(out / "alto" / f"{pid}.xml"))
        lines = doc.findall(".//a:TextLine", NS)
        n_gt = len(gt.lines)
        assert abs(len(lines) - n_gt) <= 0.2 * n_gt, (pid, len(lines), n_gt)
        words = doc.findall(".//a:String", NS)
        assert sum(1 for w in words if w.get("CONTENT")) >= len(lines) // 2, pid
        page = doc.find(".//a:Page", NS)
        assert (int(page.get("WIDTH")), int(page.get("HEIGHT"))) == (gt.width, gt.height)


def test_word_boxes_inside_line_boxes(enriched):
    _, out, _ = enriched
    checked = 0
    for f in (out / "alto").glob("*.xml"):
        for tl in etree.parse(str(f)).iterfind(".//a:TextLine", NS):
            lx, ly = int(tl.get("HPOS")), int(tl.get("VPOS"))
            lw, lh = int(tl.get("WIDTH")), int(tl.get("HEIGHT"))
            for s in tl.iterfind("a:String", NS):
                x, y, w, h = (int(s.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
                assert w > 0 and h > 0
                assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, (f.name, s.get("ID"))
                if s.get("CONTENT"):
                    assert 0.0 <= float(s.get("WC")) <= 1.0
                    checked += 1
    assert checked > 50


def test_ids_unique_across_collection_and_provenance(enriched):
    _, out, _ = enriched
    ids: list[str] = []
    for f in (out / "alto").glob("*.xml"):
        doc = etree.parse(str(f))
        ids += doc.xpath("//@ID")
        text = etree.tostring(doc, encoding="unicode")
        assert "kraken" in text and "blla.mlmodel" in text
        sha = json.loads((out / "run.json").read_text())["models"]["recognition"]["sha256"]
        assert sha in text
    assert len(ids) == len(set(ids))


def test_text_and_report(enriched):
    _, out, _ = enriched
    for _, _, pid in PAGES:
        txt = (out / "text" / f"{pid}.txt").read_text()
        assert txt.strip()
        assert (out / "thumbs" / f"{pid}.jpg").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "truncated.jpg" in html and "Lowest-confidence" in html and "thumbs/cremma_01R_P1S3SS2P118_001.jpg" in html


def test_rerun_skips_everything_then_redoes_one_changed_image(enriched):
    src, out, _ = enriched
    alto = out / "alto" / f"{PAGES[0][2]}.xml"
    before = {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")}
    summary = run_flow(src, out)
    assert (summary["skipped"], summary["done"]) == (3, 0)
    assert {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")} == before
    # change one image: only that page is processed again
    from PIL import Image

    path = src / "tapus" / PAGES[1][1]
    with Image.open(path) as im:
        im.convert("L").save(path, "JPEG", quality=90)
    summary = run_flow(src, out)
    assert (summary["skipped"], summary["done"]) == (2, 1)
    assert alto.stat().st_mtime_ns == before[alto.name]
    assert (out / "alto" / f"{PAGES[1][2]}.xml").stat().st_mtime_ns != before[f"{PAGES[1][2]}.xml"]


def test_index_finds_a_recognised_word_with_its_box_and_entities_are_tagged(enriched):
    """The index kept by the run answers a search with the exact word box written in the ALTO."""
    _, out, _ = enriched
    from htr.index.store import Index, index_path

    pid = PAGES[1][2]  # the typescript page: the best-read one
    doc = etree.parse(str(out / "alto" / f"{pid}.xml"))
    word = next(s for s in doc.iterfind(".//a:String", NS) if re.fullmatch(r"[A-Za-zÀ-ÿ]{6,}", s.get("CONTENT", "")))
    box = tuple(int(word.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    with Index.open(index_path(out), readonly=True) as idx:
        hits = idx.search(word.get("CONTENT").lower())
    assert any(h.page_id == pid and any((b.hpos, b.vpos, b.width, b.height) == box for b in h.boxes) for h in hits)
    tags = [t for f in (out / "alto").glob("*.xml") for t in etree.parse(str(f)).iterfind(".//a:NamedEntityTag", NS)]
    assert tags, "no named entity found in three real pages"
    for t in tags:  # every entity is referenced by at least one word
        assert etree.parse(str(out / "alto" / f"{t.get('ID').split('_ne')[0][2:]}.xml")).xpath(
            "//*[contains(concat(' ', @TAGREFS, ' '), $id)]", id=f" {t.get('ID')} "
        )
