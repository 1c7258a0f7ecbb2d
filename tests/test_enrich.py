"""End-to-end enrichment with real Kraken on real pages of ../shared/gt, through the Prefect flow.

One collection (3 real pages from 3 datasets, a truncated JPEG, a zero-byte image, a text file) is
enriched once per session (`kraken_run` in tests/conftest.py); the tests read its outputs, then
re-run a copy of it to check that nothing is redone. A changed image (or segmentation) being redone
alone is tests/test_reuse.py (recognition only); a killed run that resumes to identical outputs, with
no process left behind, is tests/test_faults.py (small one-line pages: the same check at a fraction
of the cost).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree

from alto.gt import read_gt
from alto.validate import validate_file
from tests.conftest import KRAKEN_PAGES as PAGES
from tests.conftest import copy_run, enrich_run, need

pytestmark = [pytest.mark.slow, pytest.mark.gt, pytest.mark.kraken]

NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}


@pytest.fixture
def enriched(kraken_run):
    return kraken_run


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_summary_counts_pages_failures_and_ignored(enriched):
    """Summary and run.json: 3 pages done with timings and hashes, 2 broken images failed naming it, the text ignored."""
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


def test_alto_valid_against_alto_4_4_xsd_and_rules(enriched, schemas_dir):
    """Every page's ALTO validates against ../shared's ALTO 4.4 schema and the project's rules."""
    _, out, _ = enriched
    xsd = need(schemas_dir / "alto-4-4.xsd", "ALTO 4.4 schema")
    files = sorted((out / "alto").glob("*.xml"))
    assert [f.stem for f in files] == sorted(p[2] for p in PAGES)
    for f in files:
        assert validate_file(f, xsd_path=xsd) == [], f


def test_line_counts_near_ground_truth_and_text_read(enriched, gt_dir):
    """Kraken finds the ground truth's number of lines (within 20 %), reads text on them, keeps the page size."""
    _, out, _ = enriched
    for folder, image, pid in PAGES:
        gt = read_gt(gt_dir / folder / image.replace(".jpg", ".xml"))
        doc = etree.parse(str(out / "alto" / f"{pid}.xml"))
        lines = doc.findall(".//a:TextLine", NS)
        n_gt = len(gt.lines)
        assert abs(len(lines) - n_gt) <= 0.2 * n_gt, (pid, len(lines), n_gt)
        words = doc.findall(".//a:String", NS)
        assert sum(1 for w in words if w.get("CONTENT")) >= len(lines) // 2, pid
        page = doc.find(".//a:Page", NS)
        assert (int(page.get("WIDTH")), int(page.get("HEIGHT"))) == (gt.width, gt.height)


def test_word_boxes_inside_line_boxes(enriched):
    """Every word box has a positive size, lies inside its line box, and read words carry a confidence in [0, 1]."""
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
    """IDs are unique across all pages; each ALTO names Kraken, the segmentation model and the recognition model's hash."""
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
    """Each page has a non-empty text file and a thumbnail; the report lists the failure and the low-confidence lines."""
    _, out, _ = enriched
    for _, _, pid in PAGES:
        txt = (out / "text" / f"{pid}.txt").read_text()
        assert txt.strip()
        assert (out / "thumbs" / f"{pid}.jpg").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "truncated.jpg" in html and "Lowest-confidence" in html and "thumbs/cremma_01R_P1S3SS2P118_001.jpg" in html


def test_rerun_skips_everything_and_rewrites_nothing(enriched, tmp_path):
    """The same command again on (a copy of) the finished run: every done page skipped, no ALTO rewritten."""
    src, out = copy_run(enriched, tmp_path)
    before = {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")}
    assert len(before) == len(PAGES)
    summary = enrich_run(src, out)
    assert (summary["skipped"], summary["done"]) == (3, 0)
    assert {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")} == before


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
