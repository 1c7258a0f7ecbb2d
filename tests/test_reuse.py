"""`--segmentation-from alto|page`: re-read the text of an existing segmentation, keeping its line ids and geometry."""

from __future__ import annotations

import json
import shutil

import pytest
from lxml import etree

from alto.gt import read_gt
from alto.validate import validate_file
from htr import reuse

pytestmark = [pytest.mark.slow, pytest.mark.gt]
NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}


def test_discover_pairs_xml_with_its_image_one_folder_up(gt_dir):
    refs, ignored = reuse.discover([str(gt_dir / "lectaurep-bronod" / "bronod1")], "page")
    assert [r.id for r in refs] == ["page_0010", "page_0012", "page_0050"]
    assert all(r.source.endswith(f"bronod1/{r.id[-4:]}.jpg") and r.segmentation.endswith(".xml") for r in refs)
    assert all(len(r.sha256) == 64 and len(r.segmentation_sha256) == 64 for r in refs)


def test_rerecognition_keeps_line_ids_and_geometry(tmp_path, gt_dir, prefect_harness):
    from flows.enrich import enrich_collection

    src = tmp_path / "export"
    shutil.copytree(gt_dir / "cremma-mss-19" / "lettre-soeur-marie", src)
    out = tmp_path / "out"
    summary = enrich_collection([str(src)], str(out), {"workers": 1, "segmentation_from": "alto"})
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
    # the same command again: nothing to do; the export edited: that page again
    assert enrich_collection([str(src)], str(out), {"workers": 1, "segmentation_from": "alto"})["skipped"] == 3
    first = sorted(src.glob("*.xml"))[0]
    first.write_text(first.read_text().replace("</alto>", "</alto>\n"))
    again = enrich_collection([str(src)], str(out), {"workers": 1, "segmentation_from": "alto"})
    assert (again["done"], again["skipped"]) == (1, 2)
    assert json.loads((out / "run.json").read_text())["settings"]["segmentation_from"] == "alto"
