"""`--segmentation-from alto|page`: re-read the text of an existing segmentation, keeping its line ids and geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lxml import etree

from alto.gt import read_gt
from alto.validate import validate_file
from htr import reuse
from tests.conftest import REREAD_SETTINGS, copy_run

pytestmark = [pytest.mark.gt]
NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}


def test_discover_pairs_xml_with_its_image_one_folder_up(gt_dir):
    """PAGE XML in a `page/` folder is paired with its image one folder up, both hashed."""
    refs, ignored = reuse.discover([str(gt_dir / "lectaurep-bronod" / "bronod1")], "page")
    assert [r.id for r in refs] == ["page_0010", "page_0012", "page_0050"]
    assert all(r.source.endswith(f"bronod1/{r.id[-4:]}.jpg") and r.segmentation.endswith(".xml") for r in refs)
    assert all(len(r.sha256) == 64 and len(r.segmentation_sha256) == 64 for r in refs)


def test_rerecognition_keeps_line_ids_and_geometry(reread_run):
    """Each page's ALTO (the session's shared re-read of a real letter) keeps the export's line ids and baselines."""
    src, out, summary = reread_run
    assert (summary["done"], summary["failed"]) == (3, 0)
    for xml in sorted(src.glob("*.xml")):
        gt = read_gt(xml)
        produced = out / "alto" / f"{xml.stem}.xml"
        assert validate_file(produced) == []
        lines = etree.parse(str(produced)).findall(".//a:TextLine", NS)
        assert [tl.get("ID") for tl in lines] == [ln.id for ln in gt.lines]
        for tl, ln in zip(lines, gt.lines):
            assert tl.get("BASELINE") == " ".join(f"{x} {y}" for x, y in ln.baseline)
        text = etree.tostring(etree.parse(str(produced)), encoding="unicode")
        assert "existing segmentation read" in text and "blla.mlmodel" not in text
    assert json.loads((out / "run.json").read_text())["settings"]["segmentation_from"] == "alto"


def test_rerun_redoes_only_the_pages_whose_segmentation_or_image_changed(reread_run, tmp_path):
    """The same command again: nothing to do. Then one export edited and another page's image changed:
    those two pages are read again, the third is left as it was."""
    from PIL import Image

    from flows.enrich import enrich_collection

    src, out = copy_run(reread_run, tmp_path)
    run = lambda: enrich_collection([str(src)], str(out), REREAD_SETTINGS)  # noqa: E731
    before = {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")}
    assert len(before) == 3
    assert run()["skipped"] == 3
    assert {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")} == before
    edited, recoloured, kept = sorted(src.glob("*.xml"))
    edited.write_text(edited.read_text().replace("</alto>", "</alto>\n"))
    image = Path(read_gt(recoloured).image_path)
    assert image.parent == src  # the copy's image, not the ground truth's
    with Image.open(image) as im:
        im.convert("L").save(image, "JPEG", quality=90)
    again = run()
    assert (again["done"], again["skipped"], again["failed"]) == (2, 1, 0)
    after = {f.name: f.stat().st_mtime_ns for f in (out / "alto").glob("*.xml")}
    assert after[kept.name] == before[kept.name]
    assert after[edited.name] != before[edited.name] and after[recoloured.name] != before[recoloured.name]


def _with_reading_order(xml: Path, out: Path) -> tuple[list[str], list[str]]:
    """Copy the ALTO `xml` to `out` with a ReadingOrder naming its text blocks backwards;
    returns (line ids in document order, line ids in that reading order)."""
    tree = etree.parse(str(xml))
    root = tree.getroot()
    ns = root.nsmap[None]
    q = lambda tag: f"{{{ns}}}{tag}"  # noqa: E731
    blocks = [b for b in root.iter(q("TextBlock")) if b.find(f".//{q('TextLine')}") is not None]
    assert len(blocks) >= 2, "the page needs two blocks with lines to have an order of its own"
    for old in root.findall(q("ReadingOrder")):
        root.remove(old)
    ro = etree.Element(q("ReadingOrder"))
    group = etree.SubElement(ro, q("OrderedGroup"), ID="ro_test")
    for n, b in enumerate(reversed(blocks)):
        etree.SubElement(group, q("ElementRef"), ID=f"ro_test_{n}", REF=b.get("ID"))
    root.find(q("Layout")).addprevious(ro)
    tree.write(str(out), xml_declaration=True, encoding="UTF-8")
    ids = lambda bs: [tl.get("ID") for b in bs for tl in b.iter(q("TextLine"))]  # noqa: E731
    return ids(blocks), ids(reversed(blocks))


def test_segmentation_from_alto_keeps_its_reading_order(tmp_path, gt_dir, monkeypatch):
    """A real eScriptorium ALTO whose ReadingOrder differs from document order: the lines are read, and
    written to the output ALTO and text, in the ReadingOrder (recognition stubbed: each line reads as its id)."""
    from alto.reader import read_alto, read_page
    from htr import pipeline, recognize
    from htr.config import RunSettings
    from htr.models import ModelInfo
    from htr.types import LineText, PageText, Word

    stem = "f14"  # 13 lines in 5 blocks, handwritten
    page_dir = gt_dir / "cremma-mss-19" / "lettres-veuillot"
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(read_gt(page_dir / f"{stem}.xml").image_path, src)
    document_order, reading_order = _with_reading_order(page_dir / f"{stem}.xml", src / f"{stem}.xml")
    assert reading_order != document_order and sorted(reading_order) == sorted(document_order)
    assert [ln.id for ln in read_page(src / f"{stem}.xml").lines] == reading_order
    assert [ln.id for ln in read_gt(src / f"{stem}.xml").lines] == reading_order

    (ref,), ignored = reuse.discover([str(src)], "alto")
    assert ignored == []

    def must_not_segment(*a, **k):
        raise AssertionError("--segmentation-from must not segment")

    def read_ids(im, seg, *a, **k):
        return PageText(tuple(LineText(ln.id, ln.id, 0.9, (Word(ln.id, ln.box, 0.9),)) for ln in seg.lines))

    monkeypatch.setattr(pipeline.segment, "run", must_not_segment)
    monkeypatch.setattr(recognize, "run", read_ids)
    stub = ModelInfo("stub", "/nonexistent", "0" * 64)
    out = tmp_path / "out"
    res = pipeline.process_page(ref, out, RunSettings(entities=False), pipeline.Models(stub, stub), "k")
    assert res.status == "done", res.error

    produced = out / "alto" / f"{ref.id}.xml"
    assert validate_file(produced) == []
    page = read_alto(produced)
    assert [ln.id for ln in page.lines] == reading_order
    assert [ln.text for ln in page.lines] == reading_order
    assert (out / "text" / f"{ref.id}.txt").read_text().splitlines() == reading_order
