"""`htr export iiif|mets|page`: documents and page order, IIIF Presentation 3 manifests and text
annotations (validated against the IIIF JSON schema), METS (METS XSD), PAGE 2019 (../shared's
pagecontent.xsd). Expected values are read from the ALTO files with lxml here, not with the code
under test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image
from portal_sample import SYN_SIZE, A, alto_lines, alto_strings, box, page_size, reading_order_lines

from cli.main import main
from htr.portal.documents import collect
from htr.portal.validate import iiif_problems, mets_problems

BASE = "https://portal.example.org/coll"
ALTO_PROFILE = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
METS = "{http://www.loc.gov/METS/}"
XLINK = "{http://www.w3.org/1999/xlink}"
PAGE = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"


# --------------------------------------------------------------------------- documents


def test_documents_are_folders_and_multipage_files_in_page_order(portal_synthetic_out: Path):
    coll = collect(portal_synthetic_out)
    got = [(d.id, [p.id for p in d.pages]) for d in coll.documents]
    run = json.loads((portal_synthetic_out / "run.json").read_text())
    in_run = [pid for r in run["pages"] for pid in (r["parts"] or [r["page_id"]])]
    assert [pid for _, pids in got[:2] for pid in pids] == in_run  # run.json order, split parts L then R
    assert got[0] == ("lettres", ["a", "b", "c-L", "c-R"])
    assert got[1] == ("registre", ["registre_p0001", "registre_p0002"])
    assert got[2][1] == ["orphan"] and coll.documents[2].source == ""  # ALTO without a run record
    tiff = coll.documents[1]
    assert [p.index for p in tiff.pages] == [0, 1] and tiff.source.endswith("registre.tif")


def test_page_image_is_capped_kept_and_refused_when_the_source_changed_shape(tmp_path: Path):
    from htr.errors import ExportError
    from htr.portal.documents import PageEntry
    from htr.portal.images import ensure_image

    src, alto = tmp_path / "scan.png", tmp_path / "alto.xml"
    Image.new("RGB", (600, 200), (10, 200, 10)).save(src)
    alto.write_text("<alto/>")
    entry = PageEntry("p", alto, str(src))
    path = ensure_image(tmp_path / "out", entry, 600, 200, max_side=150)
    with Image.open(path) as im:
        assert im.size == (150, 50)
    stamp = path.stat().st_mtime_ns
    assert ensure_image(tmp_path / "out", entry, 600, 200, max_side=150).stat().st_mtime_ns == stamp  # kept
    with pytest.raises(ExportError) as err:
        ensure_image(tmp_path / "out", entry, 200, 600, max_side=100)  # the ALTO says portrait
    assert str(src) in str(err.value) and "600x200" in str(err.value) and "\n" not in str(err.value)
    assert ensure_image(tmp_path / "out", PageEntry("q", alto, str(tmp_path / "gone.png")), 600, 200) is None


# --------------------------------------------------------------------------- IIIF


@pytest.fixture(scope="module")
def iiif_syn(portal_synthetic_out: Path) -> Path:
    assert main(["export", "iiif", str(portal_synthetic_out), "--base-url", BASE + "/", "--image-size", "400"]) == 0
    return portal_synthetic_out


def test_iiif_every_file_validates_against_the_presentation_3_schema(iiif_syn: Path):
    files = sorted((iiif_syn / "iiif").rglob("*.json"))
    kinds = {}
    for f in files:
        doc = json.loads(f.read_text())
        assert iiif_problems(doc) == [], f
        kinds.setdefault(doc["type"], []).append(f)
    assert len(kinds["Manifest"]) == 3 and len(kinds["Collection"]) == 1
    assert len(kinds["AnnotationPage"]) == 2 * 7  # lines + words of each of the 7 pages
    coll = json.loads((iiif_syn / "iiif" / "collection.json").read_text())
    docs = ("lettres", "registre", "out")
    assert [m["id"] for m in coll["items"]] == [f"{BASE}/iiif/{d}/manifest.json" for d in docs]


def test_iiif_schema_check_can_fail(iiif_syn: Path):
    m = json.loads((iiif_syn / "iiif" / "lettres" / "manifest.json").read_text())
    broken = json.loads(json.dumps(m))
    del broken["items"][0]["height"]  # width without height
    assert iiif_problems(broken)
    broken = json.loads(json.dumps(m))
    broken["items"][0]["annotations"][0]["items"][0]["target"] = "canvas/a#xywh=1,2,3,4"  # not an http URI
    assert any("target" in p or "items/0" in p for p in iiif_problems(broken))
    assert iiif_problems({"type": "Manifest", "id": f"{BASE}/m"})  # no label, no items


def test_iiif_manifest_canvases_images_alto_and_search(iiif_syn: Path):
    m = json.loads((iiif_syn / "iiif" / "lettres" / "manifest.json").read_text())
    assert m["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert m["service"] == [{"id": f"{BASE}/search", "type": "SearchService2"}]
    assert [c["id"] for c in m["items"]] == [f"{BASE}/canvas/{p}" for p in ("a", "b", "c-L", "c-R")]
    for c in m["items"]:
        pid = c["id"].rsplit("/", 1)[1]
        alto = iiif_syn / "alto" / f"{pid}.xml"
        assert (c["width"], c["height"]) == page_size(alto)
        (painting,) = c["items"][0]["items"]
        assert painting["motivation"] == "painting" and painting["target"] == c["id"]
        body = painting["body"]
        assert body["id"] == f"{BASE}/images/{pid}.jpg" and body["format"] == "image/jpeg"
        with Image.open(iiif_syn / "images" / f"{pid}.jpg") as im:
            assert im.size == (body["width"], body["height"])
        assert max(body["width"], body["height"]) == 400  # --image-size
        assert body["width"] / body["height"] == pytest.approx(c["width"] / c["height"], rel=0.01)
        (see,) = c["seeAlso"]
        assert see["id"] == f"{BASE}/alto/{pid}.xml" and see["profile"] == ALTO_PROFILE
        assert see["format"] == "application/xml"


def test_iiif_line_and_word_annotations_are_the_alto_text_and_boxes(iiif_syn: Path):
    m = json.loads((iiif_syn / "iiif" / "registre" / "manifest.json").read_text())
    for c in m["items"]:
        pid = c["id"].rsplit("/", 1)[1]
        alto = iiif_syn / "alto" / f"{pid}.xml"
        lines_page, words_ref = c["annotations"]
        assert json.loads((iiif_syn / "iiif" / "registre" / "lines" / f"{pid}.json").read_text()) == {
            "@context": m["@context"],
            **lines_page,
        }
        got = [(a["body"]["value"], a["target"]) for a in lines_page["items"]]
        assert got == [(text, f"{c['id']}#xywh={','.join(map(str, b))}") for _, text, b in alto_lines(alto)]
        assert {a["motivation"] for a in lines_page["items"]} == {"supplementing"}
        assert {a["body"]["type"] for a in lines_page["items"]} == {"TextualBody"}
        assert words_ref == {
            "id": f"{BASE}/iiif/registre/words/{pid}.json",
            "type": "AnnotationPage",
            "label": {"none": [f"{pid}: words"]},
        }
        words = json.loads((iiif_syn / "iiif" / "registre" / "words" / f"{pid}.json").read_text())
        strings = [s for tl in reading_order_lines(alto) for s in tl.iter(A + "String")]
        assert [(a["body"]["value"], a["target"]) for a in words["items"]] == [
            (s.get("CONTENT"), f"{c['id']}#xywh={','.join(map(str, box(s)))}") for s in strings
        ]


def test_iiif_tiff_pages_are_drawn_from_their_own_page(iiif_syn: Path):
    from portal_sample import TIFF_COLOURS

    for n, colour in enumerate(TIFF_COLOURS, 1):
        with Image.open(iiif_syn / "images" / f"registre_p{n:04d}.jpg") as im:
            mean = [sum(ch) / len(ch) for ch in zip(*im.convert("RGB").getdata())]
        assert mean == pytest.approx(colour, abs=8)


def test_iiif_page_without_image_still_has_a_valid_canvas(iiif_syn: Path, capsys):
    m = json.loads((iiif_syn / "iiif" / "out" / "manifest.json").read_text())
    (c,) = m["items"]
    assert c["items"][0]["items"] == [] and (c["width"], c["height"]) == SYN_SIZE
    assert not (iiif_syn / "images" / "orphan.jpg").exists()


def test_iiif_real_page(portal_gt_out: Path):
    assert main(["export", "iiif", str(portal_gt_out), "--base-url", BASE]) == 0
    (mf,) = (portal_gt_out / "iiif").glob("*/manifest.json")
    m = json.loads(mf.read_text())
    assert iiif_problems(m) == []
    (c,) = m["items"]
    alto = portal_gt_out / "alto" / "13_3536f_default.xml"
    assert (c["width"], c["height"]) == page_size(alto) == (3307, 4935)
    assert [a["body"]["value"] for a in c["annotations"][0]["items"]] == [t for _, t, _ in alto_lines(alto)]
    words = json.loads((mf.parent / "words" / "13_3536f_default.json").read_text())
    assert iiif_problems(words) == [] and len(words["items"]) == len(alto_strings(alto))


def test_iiif_export_needs_a_base_url(portal_synthetic_out: Path, tmp_path: Path, capsys):
    assert main(["export", "iiif", str(portal_synthetic_out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("htr: error:") and "--base-url" in err and err.count("\n") == 1
    assert main(["export", "iiif", str(portal_synthetic_out), "--base-url", "portal.example.org"]) == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert main(["export", "mets", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "alto/" in err and err.count("\n") == 1


def test_a_broken_run_record_is_a_one_line_error(tmp_path: Path, capsys):
    from htr.index.samples import write_sample_alto

    write_sample_alto(tmp_path, "p1", ["une ligne"])
    (tmp_path / "run.json").write_text("[1, 2]")
    assert main(["export", "page", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "run.json") in err and "run record" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- METS


def test_mets_validates_and_lists_pages_in_order(portal_synthetic_out: Path):
    assert main(["export", "mets", str(portal_synthetic_out)]) == 0
    files = sorted((portal_synthetic_out / "mets").glob("*.xml"))
    assert [f.stem for f in files] == ["lettres", "out", "registre"]
    for f in files:
        tree = etree.parse(str(f))
        assert mets_problems(tree) == [], f
        divs = tree.getroot().findall(f"{METS}structMap[@TYPE='PHYSICAL']/{METS}div/{METS}div")
        assert [d.get("ORDER") for d in divs] == [str(n) for n in range(1, len(divs) + 1)]
        assert all(d.get("TYPE") == "page" for d in divs)
        files_by_id = {e.get("ID"): e for e in tree.getroot().iter(f"{METS}file")}
        pages = []
        for d in divs:
            uses = {}
            for fp in d.findall(f"{METS}fptr"):
                el = files_by_id[fp.get("FILEID")]
                href = el.find(f"{METS}FLocat").get(f"{XLINK}href")
                uses[el.getparent().get("USE")] = href
            alto = (f.parent / uses["FULLTEXT"]).resolve()
            assert alto.is_file() and alto.parent.name == "alto"
            if "DEFAULT" in uses:
                assert (f.parent / uses["DEFAULT"]).resolve().is_file()
            pages.append((alto.stem, sorted(uses)))
        if f.stem == "lettres":
            assert pages == [(p, ["DEFAULT", "FULLTEXT", "MASTER"]) for p in ("a", "b", "c-L", "c-R")]
        if f.stem == "registre":  # pages of a multi-page file: no single MASTER file to point at
            assert pages == [(f"registre_p000{n}", ["DEFAULT", "FULLTEXT"]) for n in (1, 2)]
        if f.stem == "out":
            assert pages == [("orphan", ["FULLTEXT"])]


def test_mets_with_base_url_and_schema_check_can_fail(portal_synthetic_out: Path, tmp_path: Path):
    assert main(["export", "mets", str(portal_synthetic_out), "-o", str(tmp_path), "--base-url", BASE]) == 0
    tree = etree.parse(str(tmp_path / "lettres.xml"))
    hrefs = [e.get(f"{XLINK}href") for e in tree.getroot().iter(f"{METS}FLocat")]
    assert f"{BASE}/alto/a.xml" in hrefs and f"{BASE}/images/c-R.jpg" in hrefs
    smap = tree.getroot().find(f"{METS}structMap")
    smap.getparent().remove(smap)  # structMap is required
    assert mets_problems(tree)


def test_vendored_schemas_match_their_readme():
    import hashlib

    from htr.portal.validate import SCHEMA_DIR

    readme = (SCHEMA_DIR / "README.md").read_text()
    for f in ("mets.xsd", "iiif_3_0.json"):
        assert hashlib.sha256((SCHEMA_DIR / f).read_bytes()).hexdigest() in readme, f


# --------------------------------------------------------------------------- PAGE


def test_page_export_validates_against_page_2019(portal_gt_out: Path, portal_synthetic_out: Path, schemas_dir: Path):
    xsd = etree.XMLSchema(etree.parse(str(schemas_dir / "pagecontent.xsd")))
    for out in (portal_gt_out, portal_synthetic_out):
        assert main(["export", "page", str(out)]) == 0
        for alto in sorted((out / "alto").glob("*.xml")):
            page_file = out / "page" / alto.name
            tree = etree.parse(str(page_file))
            assert xsd.validate(tree), (page_file, xsd.error_log.last_error)


def test_page_export_keeps_reading_order_text_boxes_and_confidence(portal_gt_out: Path):
    assert main(["export", "page", str(portal_gt_out)]) == 0
    alto = portal_gt_out / "alto" / "13_3536f_default.xml"
    root = etree.parse(str(portal_gt_out / "page" / "13_3536f_default.xml")).getroot()
    page = root.find(f"{PAGE}Page")
    assert (int(page.get("imageWidth")), int(page.get("imageHeight"))) == page_size(alto)
    assert (portal_gt_out / "page" / page.get("imageFilename")).resolve().name == "13_3536f_default.jpg"
    regions = {r.get("id"): r for r in page.iter(f"{PAGE}TextRegion")}
    order = [r.get("regionRef") for r in page.iter(f"{PAGE}RegionRefIndexed")]
    got = [
        (tl.get("id"), tl.find(f"{PAGE}TextEquiv/{PAGE}Unicode").text)
        for rid in order
        for tl in regions[rid].findall(f"{PAGE}TextLine")
    ]
    assert got == [(lid, text) for lid, text, _ in alto_lines(alto)]
    words = list(page.iter(f"{PAGE}Word"))
    strings = [s for tl in reading_order_lines(alto) for s in tl.iter(A + "String")]
    assert len(words) == len(strings) == len(alto_strings(alto))
    for w, s in zip(words, strings):
        x, y, bw, bh = box(s)
        x1, y1 = x + bw - 1, y + bh - 1
        assert w.find(f"{PAGE}Coords").get("points") == f"{x},{y} {x1},{y} {x1},{y1} {x},{y1}"
        assert float(w.find(f"{PAGE}TextEquiv").get("conf")) == pytest.approx(float(s.get("WC")), abs=1e-3)
        assert w.find(f"{PAGE}TextEquiv/{PAGE}Unicode").text == s.get("CONTENT")
