"""ALTO 4.4 writer and validator (alto/writer.py, alto/validate.py)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from lxml import etree

from alto.validate import DEFAULT_XSD, Problem, is_valid, schema, validate_file, validate_paths
from alto.writer import ALTO_NS, alto_bytes, build_alto, page_text, write_alto, xml_id
from htr.errors import AltoError
from htr.types import Line, LineText, PageImage, PageRef, PageSegmentation, PageText, ProcessingStep, Region, Word
from tests.conftest import need

FOREIGN_DIR = "tapuscorpus/12148-btv1b10581912k"  # eScriptorium ALTO, under ../shared/gt
DEGENERATE = "tapuscorpus/20130043_87-1962-catalogue-dactylographié-des-enregistrements/FRAN_0011_11090_L-medium.xml"
XSD = "{http://www.w3.org/2001/XMLSchema}"
A = "{%s}" % ALTO_NS
NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*\Z")


W, H = 1000, 800
SPECIAL = "Ça coûte 5 € & <b> \"guillemets\" 'apostrophe' œuvre Æ ß"


# --------------------------------------------------------------------------- fixtures


def make_page(
    page_id: str = "0001", index: int = 0
) -> tuple[PageImage, PageSegmentation, PageText, list[ProcessingStep]]:
    """Two regions, a region-less line, a line of an unknown region, words with exact boxes,
    a line without words, an empty line, a line without any text record, special characters."""
    ref = PageRef(
        page_id, f"/data/in/{page_id.replace('/', '_')}.tif", index, hashlib.sha256(page_id.encode()).hexdigest()
    )
    page = PageImage(ref, f"/tmp/work/{page_id}.png", W, H)
    r1 = Region("r1", ((100, 100), (900, 100), (900, 300), (100, 300)))
    r2 = Region("r2", ((100, 400), (900, 400), (900, 700), (100, 700)), "MainZone")
    lines = (
        # seg order: L1(r1) L2(r2) L3(none) L4(r1) L5(ghost) L6(none)
        Line("L1", ((105, 160), (250, 158), (400, 160)), ((105, 110), (400, 110), (400, 170), (105, 170)), "r1"),
        Line("L2", ((110, 450), (800, 450)), ((110, 420), (800, 420), (800, 460), (110, 460)), "r2"),
        Line("L3", ((100, 760), (500, 760)), ((100, 730), (500, 730), (500, 770), (100, 770)), None),
        Line("L4", ((105, 260), (600, 260)), ((105, 220), (600, 220), (600, 270), (105, 270)), "r1"),
        # partly outside the page: must be clamped
        Line("L5", ((-30, 790), (1200, 790)), ((-30, -5), (1200, -5), (1200, 900), (-30, 900)), "ghost"),
        Line("L6", ((300, 560), (700, 560)), ((300, 520), (700, 520), (700, 570), (300, 570)), None),
    )
    seg = PageSegmentation(W, H, (r1, r2), lines)
    text = PageText(
        (
            LineText(
                "L1",
                "Tom & <Jerry>",
                0.8,
                (
                    Word("Tom", (110, 120, 180, 160), 0.912345),
                    Word("&", (190, 120, 200, 160), 1.7),  # gap of 10 before, clamped WC
                    Word("<Jerry>", (200, 120, 300, 160), -0.2),  # touching: bare SP
                ),
            ),
            LineText("L2", "", 0.0),  # empty line
            # L3: no text record at all
            LineText("L4", SPECIAL, 0.8),  # text but no words
            LineText(
                "L5", "déjà vu", 0.5, (Word("déjà", (-50, 10, 300, 950), 0.5), Word("vu", (2000, 10, 2100, 20), 0.25))
            ),
            LineText(
                "L6",
                "élève Noël",
                0.7,
                (Word("élève", (300, 525, 450, 565), 0.6), Word("Noël", (470, 525, 600, 565), 0.75)),
            ),
        )
    )
    steps = [
        ProcessingStep(
            "preOperation",
            "normalise image",
            "htr-enrich",
            "0.1.0",
            {"dpi": 300, "alpha": True},
            "2024-05-06T07:08:09Z",
        ),
        ProcessingStep(
            "contentGeneration",
            "kraken segmentation + recognition",
            "kraken",
            "7.1.1",
            {"model": "m.mlmodel", "b": [1, 2]},
            "2024-05-06 07:08:10",
        ),
        ProcessingStep("weird", "", "x", "1", {}, "not a date"),
    ]
    return page, seg, text, steps


@pytest.fixture(scope="module")
def built() -> etree._ElementTree:
    page, seg, text, steps = make_page()
    return build_alto(page, seg, text, steps)


@pytest.fixture
def written(tmp_path: Path, built: etree._ElementTree) -> Path:
    path = tmp_path / "p.xml"
    write_alto(path, built)
    return path


def lines_of(tree) -> list[etree._Element]:
    return list(tree.getroot().iter(A + "TextLine"))


def line_by_id(tree, lid: str) -> etree._Element:
    (el,) = [e for e in lines_of(tree) if e.get("ID") == lid]
    return el


def strings(line: etree._Element) -> list[etree._Element]:
    return line.findall(A + "String")


def box(el: etree._Element) -> tuple[int, int, int, int]:
    x, y, w, h = (int(el.get(a)) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    return (x, y, x + w, y + h)


# --------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def shared_xsd(schemas_dir: Path) -> tuple[Path, Path]:
    """../shared's ALTO 4.4 schema and the xlink schema it imports (skipped, named, when missing)."""
    return need(schemas_dir / "alto-4-4.xsd", "ALTO 4.4 schema"), need(schemas_dir / "xlink.xsd", "xlink schema")


def test_vendored_schemas_identical_to_shared(shared_xsd):
    """The schemas vendored in alto/ are byte for byte ../shared's."""
    for shared in shared_xsd:
        assert (DEFAULT_XSD.parent / shared.name).read_bytes() == shared.read_bytes(), shared.name
    assert (DEFAULT_XSD.parent / "README.md").is_file()


def test_valid_against_shared_xsd_with_local_xlink(written: Path, shared_xsd):
    """Valid against ../shared's schema, its xlink import redirected by hand (independent of alto.validate)."""
    xsd_path, xlink = shared_xsd
    doc = etree.parse(str(xsd_path))
    (imp,) = doc.getroot().findall(XSD + "import")
    assert imp.get("schemaLocation") == "http://www.loc.gov/standards/xlink/xlink.xsd"
    imp.set("schemaLocation", xlink.as_uri())
    xsd = etree.XMLSchema(doc)
    parsed = etree.parse(str(written))
    assert xsd.validate(parsed), xsd.error_log
    # and through the module, pointed at the shared copy
    assert validate_file(written, xsd_path) == []


def test_valid_for_a_second_validator(written: Path, shared_xsd):
    """Valid for xmlschema too (a second, pure-Python XSD validator)."""
    xmlschema = pytest.importorskip("xmlschema")
    xsd_path, xlink = shared_xsd
    xs = xmlschema.XMLSchema(str(xsd_path), locations=[("http://www.w3.org/1999/xlink", str(xlink))], allow="local")
    xs.validate(str(written))


def test_schema_is_cached_and_offline():
    s1 = schema()
    assert s1 is schema(None) is schema(DEFAULT_XSD)
    assert isinstance(s1, etree.XMLSchema)


def test_written_file_passes_all_rules(written: Path):
    assert validate_file(written) == []
    assert is_valid(written)
    assert validate_paths([written.parent]) == []


# --------------------------------------------------------------------------- structure and values


def test_header(built):
    root = built.getroot()
    assert root.tag == A + "alto"
    assert root.get("SCHEMAVERSION") == "4.4"
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation") == (
        "http://www.loc.gov/standards/alto/ns-v4# http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
    )
    desc = root.find(A + "Description")
    assert desc.findtext(A + "MeasurementUnit") == "pixel"
    src = desc.find(A + "sourceImageInformation")
    assert src.findtext(A + "fileName") == "0001.tif"
    fid = src.find(A + "fileIdentifier")
    assert fid.get("fileIdentifierLocation") == "sha256"
    assert fid.text == hashlib.sha256(b"0001").hexdigest()


def test_processing(built):
    procs = built.getroot().find(A + "Description").findall(A + "Processing")
    assert [p.get("ID") for p in procs] == ["p_0001_proc1", "p_0001_proc2", "p_0001_proc3"]
    p1, p2, p3 = procs
    assert [c.tag.split("}")[1] for c in p1] == [
        "processingCategory",
        "processingDateTime",
        "processingStepDescription",
        "processingStepSettings",
        "processingSoftware",
    ]
    assert p1.findtext(A + "processingCategory") == "preOperation"
    assert p1.findtext(A + "processingDateTime") == "2024-05-06T07:08:09Z"
    assert p1.findtext(A + "processingStepSettings") == '{"alpha":true,"dpi":300}'
    assert p2.findtext(A + "processingDateTime") == "2024-05-06T07:08:10"
    assert json.loads(p2.findtext(A + "processingStepSettings")) == {"b": [1, 2], "model": "m.mlmodel"}
    assert p2.findtext(f"{A}processingSoftware/{A}softwareName") == "kraken"
    assert p2.findtext(f"{A}processingSoftware/{A}softwareVersion") == "7.1.1"
    # unknown category -> "other", unparseable date and empty description left out
    assert p3.findtext(A + "processingCategory") == "other"
    assert p3.find(A + "processingDateTime") is None
    assert p3.find(A + "processingStepDescription") is None
    page = built.getroot().find(f"{A}Layout/{A}Page")
    assert page.get("PROCESSINGREFS") == "p_0001_proc1 p_0001_proc2 p_0001_proc3"


def test_page_and_printspace(built):
    page = built.getroot().find(f"{A}Layout/{A}Page")
    assert (page.get("ID"), page.get("PHYSICAL_IMG_NR"), page.get("WIDTH"), page.get("HEIGHT")) == (
        "p_0001",
        "1",
        "1000",
        "800",
    )
    ps = page.find(A + "PrintSpace")
    assert box(ps) == (0, 0, W, H)
    page2 = build_alto(*make_page("x", index=4)).getroot().find(f"{A}Layout/{A}Page")
    assert page2.get("PHYSICAL_IMG_NR") == "5"


def test_blocks_and_reading_order(built):
    blocks = list(built.getroot().iter(A + "TextBlock"))
    assert [b.get("ID") for b in blocks] == ["p_0001_b1", "p_0001_b2", "p_0001_b3", "p_0001_b4"]
    # r1 (first seen) holds L1 and L4, r2 holds L2, then the region-less runs [L3] and [L5 (unknown region), L6]
    assert [len(b.findall(A + "TextLine")) for b in blocks] == [2, 1, 1, 2]
    b1, b2, b3, b4 = blocks
    assert box(b1) == (100, 100, 901, 301)  # region polygon box
    assert b1.find(f"{A}Shape/{A}Polygon").get("POINTS") == "100 100 900 100 900 300 100 300"
    assert b3.find(A + "Shape") is None
    assert box(b3) == (100, 730, 501, 771)  # union of its lines
    assert box(b4) == (0, 0, W, H)  # L5 clamped to the page, unioned with L6
    # TAGREFS of region types point at Tags
    tags = {t.get("ID"): t.get("LABEL") for t in built.getroot().find(A + "Tags")}
    assert tags[b1.get("TAGREFS")] == "text" and tags[b2.get("TAGREFS")] == "MainZone"
    # ReadingOrder lists the blocks in order
    refs = [e.get("REF") for e in built.getroot().iter(A + "ElementRef")]
    assert refs == [b.get("ID") for b in blocks]
    # lines: ids numbered in output (reading) order
    assert [ln.get("ID") for ln in lines_of(built)] == [f"p_0001_l{n}" for n in range(1, 7)]


def test_line_text_in_reading_order(built):
    page, seg, text, _ = make_page()
    got = [" ".join(s.get("CONTENT") for s in strings(ln)) for ln in lines_of(built)]
    assert got == ["Tom & <Jerry>", SPECIAL, "", "", "déjà vu", "élève Noël"]
    assert page_text(seg, text) == "Tom & <Jerry>\n" + SPECIAL + "\n\n\ndéjà vu\nélève Noël\n"
    assert page_text(seg, None) == "\n" * 6


def test_line_attributes_and_words(built):
    l1 = line_by_id(built, "p_0001_l1")
    assert (l1.get("HPOS"), l1.get("VPOS"), l1.get("WIDTH"), l1.get("HEIGHT")) == ("105", "110", "296", "61")
    assert l1.get("BASELINE") == "105 160 250 158 400 160"
    assert l1.find(f"{A}Shape/{A}Polygon").get("POINTS") == "105 110 400 110 400 170 105 170"
    kids = [c.tag.split("}")[1] for c in l1]
    assert kids == ["Shape", "String", "SP", "String", "SP", "String"]
    s = strings(l1)
    assert [(e.get("ID"), e.get("CONTENT")) for e in s] == [
        ("p_0001_l1_w1", "Tom"),
        ("p_0001_l1_w2", "&"),
        ("p_0001_l1_w3", "<Jerry>"),
    ]
    assert [box(e) for e in s] == [(110, 120, 180, 160), (190, 120, 200, 160), (200, 120, 300, 160)]
    assert [(e.get("HPOS"), e.get("VPOS"), e.get("WIDTH"), e.get("HEIGHT")) for e in s][0] == ("110", "120", "70", "40")
    assert [e.get("WC") for e in s] == ["0.9123", "1", "0"]
    sp1, sp2 = l1.findall(A + "SP")
    assert dict(sp1.attrib) == {"HPOS": "180", "VPOS": "120", "WIDTH": "10"}
    assert dict(sp2.attrib) == {}  # no gap: bare SP (valid, all attributes optional)


def test_line_without_words_and_empty_lines(built):
    l2 = line_by_id(built, "p_0001_l2")  # L4: text, no words
    (s,) = strings(l2)
    assert s.get("CONTENT") == SPECIAL
    assert box(s) == box(l2) == (105, 220, 601, 271)
    assert s.get("WC") == "0.8"
    for lid in ("p_0001_l3", "p_0001_l4"):  # L2 (empty text) and L3 (no text record)
        ln = line_by_id(built, lid)
        (s,) = strings(ln)  # the XSD requires at least one String per TextLine
        assert s.get("CONTENT") == ""
        assert box(s) == box(ln)
        assert s.get("WC") is None


def test_clamping(built):
    l5 = line_by_id(built, "p_0001_l5")
    assert box(l5) == (0, 0, W, H)
    assert l5.get("BASELINE") == "0 790 999 790"
    assert l5.find(f"{A}Shape/{A}Polygon").get("POINTS") == "0 0 999 0 999 799 0 799"
    s = strings(l5)
    assert box(s[0]) == (0, 10, 300, 800)  # clipped to the line box
    assert box(s[1]) == (999, 10, 1000, 20)  # entirely right of the line: 1 px at its edge
    for el in built.getroot().iter():
        for a in ("WIDTH", "HEIGHT"):
            if el.get(a) is not None:
                assert int(el.get(a)) >= 1
        for a in ("BASELINE", "POINTS"):
            if el.get(a):
                nums = [int(v) for v in el.get(a).split()]
                assert all(0 <= x <= W - 1 for x in nums[::2]) and all(0 <= y <= H - 1 for y in nums[1::2])


def test_round_trip(written: Path):
    page, seg, text, _ = make_page()
    parsed = etree.parse(str(written))
    assert parsed.docinfo.encoding == "UTF-8" and parsed.docinfo.xml_version == "1.0"
    got = {}
    for ln in lines_of(parsed):
        got[ln.get("ID")] = (" ".join(s.get("CONTENT") for s in strings(ln)), [box(s) for s in strings(ln)])
    assert got["p_0001_l1"] == ("Tom & <Jerry>", [w.box for w in text.lines[0].words])
    assert got["p_0001_l6"] == ("élève Noël", [w.box for w in text.lines[4].words])
    assert got["p_0001_l2"][0] == SPECIAL
    raw = written.read_bytes()
    assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    assert "œuvre".encode() in raw and b"&amp;" in raw and b"&lt;b&gt;" in raw
    assert b"\n    <" in raw  # pretty printed


def test_special_and_control_characters(tmp_path: Path):
    page, seg, _, _ = make_page()
    nasty = "a\x00b\x01c\x0bd\x1f e\ud800f \ufffe\uffff&<>\"'\u0153\U0001f600"
    text = PageText((LineText("L1", nasty, 0.5, (Word(nasty, (110, 120, 180, 160), 0.5),)), LineText("L4", nasty, 0.5)))
    tree = build_alto(page, seg, text, [ProcessingStep("other", "d\x07", "s\x02", "v", {"k": "v\x01"})])
    path = tmp_path / "n.xml"
    write_alto(path, tree)
    clean = "abcd ef &<>\"'\u0153\U0001f600"
    parsed = etree.parse(str(path))
    assert strings(line_by_id(parsed, "p_0001_l1"))[0].get("CONTENT") == clean
    assert strings(line_by_id(parsed, "p_0001_l2"))[0].get("CONTENT") == clean
    assert validate_file(path) == []
    # tab / newline inside a line's text become spaces (one TextLine = one text line)
    text = PageText((LineText("L4", "a\tb\nc", 0.5),))
    tree = build_alto(page, seg, text, [])
    assert strings(line_by_id(tree, "p_0001_l2"))[0].get("CONTENT") == "a b c"
    assert page_text(seg, text).splitlines()[1] == "a b c"


def test_ids_unique_and_ncname_across_pages(tmp_path: Path):
    assert xml_id("0001") == "p_0001"
    assert xml_id("a/b") == "p_a_b"
    assert xml_id("doc 1:p.2-é") == "p_doc_1_p.2-_"
    ids: list[str] = []
    for n, pid in enumerate(("0001", "a/b", "x y:z")):
        path = tmp_path / f"{n}.xml"
        write_alto(path, build_alto(*make_page(pid)))
        assert validate_file(path) == []
        ids += [el.get("ID") for el in etree.parse(str(path)).iter() if el.get("ID") is not None]
    assert len(ids) == len(set(ids))
    assert all(NCNAME.match(i) for i in ids), [i for i in ids if not NCNAME.match(i)]
    assert "p_a_b_l1_w1" in ids and "p_a_b_proc1" in ids and "p_a_b_b1" in ids


def test_no_steps_no_text_no_regions():
    page, seg, _, _ = make_page()
    seg = PageSegmentation(W, H, (), seg.lines[:2])
    tree = build_alto(page, seg, None, [])
    root = tree.getroot()
    assert root.find(A + "Description").find(A + "Processing") is None
    assert len(list(root.iter(A + "TextBlock"))) == 1  # one contiguous region-less run
    assert schema().validate(tree), schema().error_log
    empty = build_alto(page, PageSegmentation(W, H), None, [])
    assert root.find(A + "ReadingOrder") is not None and empty.getroot().find(A + "ReadingOrder") is None
    assert schema().validate(empty), schema().error_log
    with pytest.raises(AltoError):
        build_alto(PageImage(page.ref, page.path, 0, 0), PageSegmentation(0, 0), None, [])


# --------------------------------------------------------------------------- atomic write


def _dir_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_over_existing_leaves_no_temp(tmp_path: Path, built):
    path = tmp_path / "out.xml"
    path.write_text("old")
    write_alto(path, built)
    assert path.read_bytes() == alto_bytes(built)
    assert _dir_names(tmp_path) == ["out.xml"]
    write_alto(tmp_path / "sub" / "new.xml", built)  # creates the folder
    assert (tmp_path / "sub" / "new.xml").is_file()


def test_write_unserialisable_tree_keeps_old_file(tmp_path: Path):
    path = tmp_path / "out.xml"
    path.write_text("old")
    with pytest.raises(AltoError):
        write_alto(path, "not a tree")  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert _dir_names(tmp_path) == ["out.xml"]


def test_write_failure_during_replace_keeps_old_file(tmp_path: Path, built, monkeypatch):
    path = tmp_path / "out.xml"
    path.write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(AltoError) as exc:
        write_alto(path, built)
    assert "out.xml" in str(exc.value)
    assert path.read_text() == "old"
    assert _dir_names(tmp_path) == ["out.xml"]
    monkeypatch.undo()
    missing = tmp_path / "new.xml"
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(AltoError):
        write_alto(missing, built)
    assert not missing.exists() and _dir_names(tmp_path) == ["out.xml"]


# --------------------------------------------------------------------------- validator on broken ALTO


def _find(tree, tag: str, eid: str) -> etree._Element:
    (el,) = [e for e in tree.getroot().iter(A + tag) if e.get("ID") == eid]
    return el


def _dup_id(t):
    _find(t, "TextLine", "p_0001_l2").set("ID", "p_0001_l1")


def _word_outside(t):
    _find(t, "String", "p_0001_l1_w1").set("HPOS", "50")


def _negative_width(t):
    _find(t, "String", "p_0001_l1_w2").set("WIDTH", "-5")


def _wc(t):
    _find(t, "String", "p_0001_l1_w3").set("WC", "1.5")


def _tagrefs(t):
    _find(t, "TextLine", "p_0001_l6").set("TAGREFS", "p_0001_tag1 nowhere")


def _xsd(t):
    ln = _find(t, "TextLine", "p_0001_l3")
    ln.insert(0, etree.Element(A + "SP"))  # SP before the first String


def _outside_page(t):
    _find(t, "TextBlock", "p_0001_b2").set("HPOS", "990")


def _baseline_outside(t):
    _find(t, "TextLine", "p_0001_l4").set("BASELINE", "100 760 1500.5 760")


def _baseline_short(t):
    _find(t, "TextLine", "p_0001_l4").set("BASELINE", "100,760")


def _points(t):
    _find(t, "TextLine", "p_0001_l6").find(f"{A}Shape/{A}Polygon").set("POINTS", "1 2 3")


BROKEN = [
    (_dup_id, "unique-id", "p_0001_l1"),
    (_word_outside, "word-in-line", "p_0001_l1_w1"),
    (_negative_width, "positive-size", "p_0001_l1_w2"),
    (_wc, "wc-range", "p_0001_l1_w3"),
    (_tagrefs, "tagrefs", "p_0001_l6"),
    (_xsd, "xsd", "p_0001_l3"),
    (_outside_page, "inside-page", "p_0001_b2"),
    (_baseline_outside, "inside-page", "p_0001_l4"),
    (_baseline_short, "baseline", "p_0001_l4"),
    (_points, "points", "p_0001_l6"),
]


@pytest.mark.parametrize("mutate,rule,eid", BROKEN, ids=[f"{b[0].__name__}-{b[1]}" for b in BROKEN])
def test_validator_reports_rule(tmp_path: Path, built, mutate, rule, eid):
    tree = copy.deepcopy(built)
    mutate(tree)
    path = tmp_path / "broken.xml"
    path.write_bytes(alto_bytes(tree))
    problems = validate_file(path)
    hits = [p for p in problems if p.rule == rule]
    assert hits, problems
    assert eid in {p.element_id for p in hits}, hits
    assert all(p.path == str(path) for p in problems)
    assert all(re.match(r"line \d+: ", p.message) for p in problems), problems
    # rule checks only fire for the rule that was broken (xsd may add its own view of the same error)
    assert {p.rule for p in problems} <= {rule, "xsd"}, problems
    assert not is_valid(path)


def test_validator_xml_and_missing(tmp_path: Path, written: Path):
    bad = tmp_path / "trunc.xml"
    bad.write_bytes(written.read_bytes()[:500])
    (p,) = validate_file(bad)
    assert p.rule == "xml" and p.element_id is None and p.message.startswith("line ")
    assert not is_valid(bad)
    (m,) = validate_paths([tmp_path / "nope"])
    assert m.rule == "xml"
    assert not is_valid(tmp_path / "nope.xml")
    assert {q.path for q in validate_paths([tmp_path])} == {str(bad)}


def test_problem_str():
    assert str(Problem("a.xml", "l1", "wc-range", "line 3: bad")) == "a.xml: [l1] wc-range: line 3: bad"
    assert str(Problem("a.xml", None, "xml", "line 1: bad")) == "a.xml: xml: line 1: bad"


def test_validator_tolerates_foreign_forms(tmp_path: Path):
    """Float coordinates, comma points, legacy one-number BASELINE, missing attributes, nested blocks."""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}">
  <Description><MeasurementUnit>pixel</MeasurementUnit></Description>
  <Tags><LayoutTag ID="T1" LABEL="x"/></Tags>
  <Layout><Page ID="P" PHYSICAL_IMG_NR="1" WIDTH="100.5" HEIGHT="50">
    <PrintSpace><ComposedBlock ID="C"><TextBlock ID="B" TAGREFS="T1">
      <TextLine ID="L" HPOS="1.5" VPOS="2" WIDTH="99" HEIGHT="10" BASELINE="10,11 100.5,11">
        <Shape><Polygon POINTS="1.5,2 100.5,2 100.5,12 1.5,12"/></Shape>
        <String CONTENT="a" HPOS="1.5" VPOS="2" WIDTH="10.25" HEIGHT="10"/><SP/>
        <String CONTENT="b"/>
      </TextLine>
      <TextLine BASELINE="40"><String CONTENT="c" WC="0.5"/></TextLine>
    </TextBlock></ComposedBlock></PrintSpace>
  </Page></Layout>
</alto>"""
    path = tmp_path / "foreign.xml"
    path.write_text(xml, encoding="utf-8")
    assert validate_file(path) == []
    assert is_valid(path)


def test_foreign_alto_validates(gt_dir: Path):
    """eScriptorium's ALTO of a real typescript passes the validator (schema and rules)."""
    files = sorted(need(gt_dir / FOREIGN_DIR, "third-party ALTO").glob("*.xml"))
    assert files
    for f in files:
        assert validate_file(f) == [], f
        assert is_valid(f)


def test_foreign_degenerate_line_is_a_true_positive(gt_dir: Path):
    """eScriptorium exported a zero-size line (polygon collapsed to one point): positive-size, nothing else."""
    f = need(gt_dir / DEGENERATE, "third-party ALTO with a zero-size line")
    problems = validate_file(f)
    assert problems and {p.rule for p in problems} == {"positive-size"}
    assert {p.element_id for p in problems} == {"eSc_line_577836f2"}


def test_leftover_temp_is_swept_by_htr_atomic(tmp_path: Path, built, monkeypatch):
    """If the process dies between write and rename, the temp file is one htr.atomic.sweep() removes."""
    atomic = pytest.importorskip("htr.atomic")
    path = tmp_path / "out.xml"

    def boom(src, dst):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", boom)
    monkeypatch.setattr(os, "unlink", lambda p: None)  # as if killed before cleaning up
    with pytest.raises(AltoError):
        write_alto(path, built)
    monkeypatch.undo()
    left = _dir_names(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.xml") and not left[0].endswith(".xml")
    assert validate_paths([tmp_path]) == []  # a temp file is never taken for an ALTO file
    assert atomic.sweep(tmp_path) == 1 and _dir_names(tmp_path) == []


def test_schema_imports_resolved_locally(tmp_path: Path, written: Path):
    """A schema copied alone uses the vendored xlink.xsd; an import with no local copy is an error, not a download."""
    alone = tmp_path / "alone" / "alto-4-4.xsd"
    alone.parent.mkdir()
    alone.write_bytes(DEFAULT_XSD.read_bytes())
    assert validate_file(written, alone) == []
    other = tmp_path / "other" / "alto-4-4.xsd"
    other.parent.mkdir()
    other.write_bytes(DEFAULT_XSD.read_bytes().replace(b"/xlink/xlink.xsd", b"/xlink/missing-xlink.xsd"))
    with pytest.raises(AltoError, match="missing-xlink.xsd"):
        schema(other)
