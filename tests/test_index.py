"""Full-text index (htr/index): ALTO written by alto.writer from hand-made records -> OUT/index.sqlite -> search."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from lxml import etree

from alto.writer import ALTO_NS
from htr.errors import AltoError, HTRError
from htr.index import Index, QueryError, index_path, rebuild, sync
from htr.index.entities import Entity
from htr.index.query import Term, build, parse
from htr.index.samples import write_sample_alto
from htr.index.store import Hit

A = "{%s}" % ALTO_NS

P1 = [
    "État de la France",
    "le 12 mars 1850 à Paris",
    "Jean Dupont notaire à Lyon, provi-",
    "dentiel secours",
    "M. Pierre Durand, notaire",
]
P2 = ["Les notaires de Paris", "notaire royal du Roi"]
P1_ENTITIES = [
    Entity("DATE", "12 mars 1850", "1850-03-12", (("L2", 3, 15),)),
    Entity("LOC", "Paris", "Paris", (("L2", 18, 23),)),
    Entity("PER", "Jean Dupont", "Jean Dupont", (("L3", 0, 11),)),
    Entity("LOC", "Lyon", "Lyon", (("L3", 22, 26),)),
]


def alto_box(path: Path, content: str) -> tuple[int, int, int, int]:
    """HPOS, VPOS, WIDTH, HEIGHT of the first String with this CONTENT in an ALTO file."""
    for s in etree.parse(str(path)).getroot().iter(A + "String"):
        if s.get("CONTENT") == content:
            return tuple(int(float(s.get(a))) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    raise AssertionError(f"{content!r} not in {path}")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    o = tmp_path / "out"
    write_sample_alto(o, "p1", P1, P1_ENTITIES)
    write_sample_alto(o, "p2", P2)
    return o


@pytest.fixture
def idx(out: Path):
    rebuild(out)
    with Index.open(index_path(out)) as i:
        yield i


def boxes(hit: Hit) -> list[tuple[int, int, int, int]]:
    return [(b.hpos, b.vpos, b.width, b.height) for b in hit.boxes]


def dump(path: Path) -> dict[str, list]:
    """Everything the index holds, without internal numbers and times (to compare two indexes)."""
    con = sqlite3.connect(str(path))
    try:
        q = lambda sql: sorted(con.execute(sql).fetchall())  # noqa: E731
        return {
            "pages": q("SELECT page_id, sha256, size, width, height, n_lines, n_words FROM pages"),
            "lines": q(
                "SELECT p.page_id, l.line_no, l.line_id, l.text, l.hpos, l.vpos, l.width, l.height"
                " FROM lines l JOIN pages p ON p.doc = l.doc"
            ),
            "words": q("SELECT page_id, line_id, pos, content, full, hpos, vpos, width, height FROM word_rows"),
            "fts": q("SELECT p.page_id, f.body, f.extra FROM fts f JOIN pages p ON p.doc = f.rowid"),
            "entities": q(
                "SELECT p.page_id, e.n, e.type, e.surface, e.normalised, e.line_id, e.boxes"
                " FROM entities e JOIN pages p ON p.doc = e.doc"
            ),
        }
    finally:
        con.close()


# --------------------------------------------------------------------------- search


def test_etat_finds_accented_word_with_its_exact_box(idx: Index, out: Path):
    hits = idx.search("etat")
    assert len(hits) == 1
    h = hits[0]
    assert (h.page_id, h.line_id, h.rank) == ("p1", "p_p1_l1", 1)
    assert h.snippet == "[État] de la France"
    assert boxes(h) == [alto_box(out / "alto" / "p1.xml", "État")] == [(100, 100, 80, 40)]
    assert [b.text for b in h.boxes] == ["État"]
    # case and accents never matter, in the query either
    for q in ("ÉTAT", "état", "Etat", "eTaT"):
        assert [(x.page_id, x.line_id) for x in idx.search(q)] == [("p1", "p_p1_l1")]


def test_phrase_matches_consecutive_words_only(idx: Index):
    hits = idx.search('"le 12 mars"')
    assert [(h.page_id, h.line_id) for h in hits] == [("p1", "p_p1_l2")]
    assert hits[0].snippet == "[le] [12] [mars] 1850 à Paris"
    assert len(hits[0].boxes) == 3
    assert idx.search('"mars le 12"') == []
    assert idx.search('"12 mars 1850" paris')  # phrase AND word


def test_prefix(idx: Index):
    hits = idx.search("notai*")
    found = {(h.page_id, h.line_id) for h in hits}
    assert found == {("p2", "p_p2_l1"), ("p2", "p_p2_l2"), ("p1", "p_p1_l3"), ("p1", "p_p1_l5")}
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert idx.search("notai") == []  # without the star: a whole word


def test_words_are_anded_and_limit_works(idx: Index):
    assert {h.page_id for h in idx.search("paris royal")} == {"p2"}
    assert idx.search("paris zzzz") == []
    assert len(idx.search("notai*", limit=2)) == 2
    assert [h.rank for h in idx.search("notai*", limit=2, offset=2)] == [3, 4]


def test_or_and_not(idx: Index):
    assert {h.page_id for h in idx.search("lyon OR royal")} == {"p1", "p2"}
    assert {h.page_id for h in idx.search("notai* NOT dupont")} == {"p2"}
    assert {h.page_id for h in idx.search("paris lyon OR royal")} == {"p1", "p2"}
    assert [h.snippet for h in idx.search("etat OR zzz")] == ["[État] de la France"]
    assert idx.search("etat NOT france") == []
    assert idx.search('"or"') == [] and idx.search("or") == []  # quoted or lower case: the word


def test_hyphenated_word_split_over_two_lines_is_found_whole(idx: Index, out: Path):
    hits = idx.search("providentiel")
    assert len(hits) == 1
    h = hits[0]
    assert h.line_id == "p_p1_l3" and h.lines == ("p_p1_l3", "p_p1_l4")
    assert h.snippet == "Jean Dupont notaire à Lyon, [provi-] / [dentiel] secours"
    alto = out / "alto" / "p1.xml"
    assert boxes(h) == [alto_box(alto, "provi-"), alto_box(alto, "dentiel")]
    assert [b.line_id for b in h.boxes] == ["p_p1_l3", "p_p1_l4"]
    assert idx.search('"lyon providentiel secours"')  # the joined word is in the text flow
    assert idx.search("provi")  # the parts stay searchable


def test_alto_hyp_subs_content(tmp_path: Path):
    """Third-party ALTO with HypPart1/HypPart2 + SUBS_CONTENT and a HYP element."""
    out = tmp_path / "out"
    (out / "alto").mkdir(parents=True)
    (out / "alto" / "hyp.xml").write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}"><Layout><Page ID="pg" WIDTH="1000" HEIGHT="1000"><PrintSpace>
<TextBlock ID="b1">
 <TextLine ID="tl1" HPOS="10" VPOS="10" WIDTH="500" HEIGHT="30">
  <String CONTENT="une" HPOS="10" VPOS="10" WIDTH="60" HEIGHT="30"/><SP/>
  <String CONTENT="reconnais" SUBS_TYPE="HypPart1" SUBS_CONTENT="reconnaissance" HPOS="80" VPOS="10" WIDTH="180" HEIGHT="30"/>
  <HYP CONTENT="-"/>
 </TextLine>
 <TextLine ID="tl2" HPOS="10" VPOS="50" WIDTH="500" HEIGHT="30">
  <String CONTENT="sance" SUBS_TYPE="HypPart2" SUBS_CONTENT="reconnaissance" HPOS="10" VPOS="50" WIDTH="100" HEIGHT="30"/><SP/>
  <String CONTENT="vive" HPOS="120" VPOS="50" WIDTH="80" HEIGHT="30"/>
 </TextLine>
</TextBlock></PrintSpace></Page></Layout></alto>""",
        encoding="utf-8",
    )
    rebuild(out)
    with Index.open(index_path(out), readonly=True) as idx:
        hits = idx.search("reconnaissance")
        assert len(hits) == 1 and boxes(hits[0]) == [(80, 10, 180, 30), (10, 50, 100, 30)]
        assert idx.search('"une reconnaissance vive"')


def test_reading_order_follows_alto_reading_order(tmp_path: Path):
    out = tmp_path / "out"
    (out / "alto").mkdir(parents=True)
    (out / "alto" / "ro.xml").write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}"><ReadingOrder><OrderedGroup ID="g"><ElementRef ID="r1" REF="b2"/><ElementRef ID="r2" REF="b1"/>
</OrderedGroup></ReadingOrder><Layout><Page ID="pg" WIDTH="1000" HEIGHT="1000"><PrintSpace>
<TextBlock ID="b1"><TextLine ID="second"><String CONTENT="monde" HPOS="1" VPOS="1" WIDTH="5" HEIGHT="5"/></TextLine></TextBlock>
<TextBlock ID="b2"><TextLine ID="first"><String CONTENT="bonjour" HPOS="1" VPOS="9" WIDTH="5" HEIGHT="5"/></TextLine></TextBlock>
</PrintSpace></Page></Layout></alto>""",
        encoding="utf-8",
    )
    rebuild(out)
    with Index.open(index_path(out), readonly=True) as idx:
        assert [h.line_id for h in idx.search('"bonjour monde"')] == ["first"]
        assert idx.search('"monde bonjour"') == []


# --------------------------------------------------------------------------- malformed and hostile queries


@pytest.mark.parametrize(
    "query, says",
    [
        ('"unclosed', "unclosed quote"),
        ('etat "le 12', "unclosed quote"),
        ("AND", "AND needs"),
        ("etat AND", "AND needs"),
        ("OR paris", "OR needs"),
        ("etat OR", "OR needs"),
        ("etat AND OR paris", "OR needs"),
        ("NOT", "NOT needs"),
        ("NOT etat", "NOT only excludes"),
        ("etat NOT paris OR lyon", "cannot be combined with OR"),
        ("*", "* must follow"),
        ("no*tai", "only allowed at the end"),
        ("NEAR(", "NEAR is not supported"),
        ("etat NEAR(paris)", "NEAR is not supported"),
        ('""', "empty phrase"),
        ("", "empty query"),
        ("   ", "empty query"),
        ("( )", "parentheses"),
        ("-- ;", "nothing to search"),
        ("x" * 2000, "too long"),
    ],
)
def test_malformed_queries_raise_a_one_line_query_error(idx: Index, query: str, says: str):
    with pytest.raises(QueryError) as err:
        idx.search(query)
    msg = str(err.value)
    assert says in msg and "\n" not in msg and "Traceback" not in msg
    assert isinstance(err.value, HTRError)


@pytest.mark.parametrize(
    "query",
    [
        "'; DROP TABLE words; --",
        "Robert'); DELETE FROM pages WHERE 1=1; --",
        "etat' OR '1'='1",
        "paris UNION SELECT * FROM pages",
        "body:etat",
        "{body extra}: etat",
        "^etat",
        "etat -paris",
        "notai* + royal",
    ],
)
def test_sql_and_fts_syntax_in_queries_is_just_searched(idx: Index, out: Path, query: str):
    before = dump(index_path(out))
    idx.search(query)  # no error: every term is a quoted FTS5 string passed as an SQL parameter
    assert dump(index_path(out)) == before
    assert idx.search("etat")


def test_fts_expression_quotes_every_term():
    expr, terms = build('etat "le 12 mars" notai* l\'an "a""b"')
    assert expr == '"etat" AND "le 12 mars" AND "notai"* AND "l\'an" AND "a" AND "b"'
    assert [t.tokens for t in terms] == [("etat",), ("le", "12", "mars"), ("notai",), ("l", "an"), ("a",), ("b",)]
    assert [t.prefix for t in parse("a* b")] == [True, False]
    assert build("a b OR c NOT d")[0] == '("a" AND ("b" OR "c")) NOT "d"'
    assert build("a AND b")[0] == '"a" AND "b"'
    assert Term('a"b', ("a", "b")).fts() == '"a""b"'  # a quote inside a term is doubled


# --------------------------------------------------------------------------- writing, consistency, repair


def test_reindexing_a_page_replaces_its_rows(idx: Index, out: Path):
    before = idx.stats()
    for _ in range(3):
        idx.replace_page("p1", out / "alto" / "p1.xml")
    assert idx.stats() == before
    assert len(idx.search("etat")) == 1
    write_sample_alto(out, "p1", ["Autre texte entièrement"])
    idx.replace_page("p1", out / "alto" / "p1.xml")
    assert idx.search("etat") == []
    assert [h.line_id for h in idx.search("entierement")] == ["p_p1_l1"]
    assert idx.stats()["pages"] == 2
    assert idx.page_entities("p1") == []


def test_rebuild_from_alto_alone_equals_incremental_index(out: Path, tmp_path: Path):
    inc = tmp_path / "incremental.sqlite"
    with Index.open(inc) as idx:
        for pid in ("p2", "p1", "p2"):  # any order, pages re-indexed
            idx.replace_page(pid, out / "alto" / f"{pid}.xml")
    report = rebuild(out)
    assert sorted(report.added) == ["p1", "p2"] and not report.failed
    a, b = dump(inc), dump(index_path(out))
    assert a == b
    assert len(a["words"]) == sum(len(t.split()) for t in P1 + P2)
    assert len(a["entities"]) == len(P1_ENTITIES)


def test_failure_inside_the_transaction_leaves_the_old_rows(idx: Index, out: Path, monkeypatch):
    before = dump(index_path(out))
    write_sample_alto(out, "p1", ["Texte nouveau remplaçant"])
    real = Index._write_page_rows

    def dies_halfway(self, doc, rows):
        real(self, doc, rows)  # rows written, then the process "dies" before COMMIT
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Index, "_write_page_rows", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        idx.replace_page("p1", out / "alto" / "p1.xml")
    monkeypatch.undo()
    assert dump(index_path(out)) == before
    assert idx.search("etat") and idx.search("remplacant") == []
    with Index.open(index_path(out), readonly=True) as other:  # another connection sees the same
        assert other.search("etat") and other.search("remplacant") == []


def test_unreadable_alto_leaves_the_index_untouched(idx: Index, out: Path):
    before = dump(index_path(out))
    bad = out / "alto" / "p1.xml"
    bad.write_text("<alto><Layout><Page", encoding="utf-8")
    with pytest.raises(AltoError) as err:
        idx.replace_page("p1", bad)
    assert "p1.xml" in str(err.value)
    assert dump(index_path(out)) == before


def test_sync_reindexes_only_changed_pages_and_drops_removed_ones(out: Path):
    first = sync(out)
    assert sorted(first.added) == ["p1", "p2"]
    again = sync(out)
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 2)
    # same bytes, new mtime: compared by sha256, nothing re-indexed
    p2 = out / "alto" / "p2.xml"
    os.utime(p2, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    touched = sync(out)
    assert touched.updated == [] and touched.unchanged == 2
    write_sample_alto(out, "p2", ["Registre des actes"])
    changed = sync(out)
    assert changed.updated == ["p2"] and changed.unchanged == 1
    (out / "alto" / "p1.xml").unlink()
    write_sample_alto(out, "p3", ["Troisième page"])
    (out / "alto" / ".p4.xml.tmp-abc").write_text("partial", encoding="utf-8")  # a killed writer's temp file
    last = sync(out)
    assert last.removed == ["p1"] and last.added == ["p3"] and not last.failed
    with Index.open(index_path(out), readonly=True) as idx:
        assert set(idx.pages()) == {"p2", "p3"}
        assert idx.search("etat") == [] and idx.search("registre")
        stamp = idx.pages()["p2"]
        assert len(stamp.sha256) == 64 and stamp.size == (out / "alto" / "p2.xml").stat().st_size
    assert dump(index_path(out)) == dump(_rebuilt_copy(out))


def _rebuilt_copy(out: Path) -> Path:
    copy = out.parent / "copy"
    shutil.copytree(out / "alto", copy / "alto")
    rebuild(copy)
    return index_path(copy)


def test_sync_reports_a_bad_alto_and_goes_on(out: Path):
    (out / "alto" / "broken.xml").write_text("not xml", encoding="utf-8")
    report = sync(out)
    assert sorted(report.added) == ["p1", "p2"]
    assert [p for p, _ in report.failed] == ["broken"] and "broken.xml" in report.failed[0][1]


def test_readonly_open_of_a_missing_index_says_what_to_do(tmp_path: Path):
    with pytest.raises(HTRError, match="htr index"):
        Index.open(tmp_path / "index.sqlite", readonly=True)


def test_index_of_another_schema_version_is_emptied_for_writing(out: Path):
    rebuild(out)
    con = sqlite3.connect(str(index_path(out)))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    con.commit()
    con.close()
    with pytest.raises(HTRError, match="rebuild"):
        Index.open(index_path(out), readonly=True)
    assert sorted(sync(out).added) == ["p1", "p2"]


# --------------------------------------------------------------------------- real third-party ALTO


def test_real_tapuscorpus_alto_is_indexed_by_rebuild(gt_dir: Path, tmp_path: Path):
    src = gt_dir / "tapuscorpus" / "12148-btv1b525062185" / "3_eac6a_default.xml"
    if not src.is_file():
        pytest.skip(f"{src} missing")
    out = tmp_path / "out"
    (out / "alto").mkdir(parents=True)
    shutil.copy(src, out / "alto" / "delatre_3.xml")
    report = rebuild(out)
    assert report.added == ["delatre_3"] and not report.failed
    with Index.open(index_path(out), readonly=True) as idx:
        hits = idx.search("blery")  # "monsieur Bléry et moi ..." (Strings are whole lines there)
        assert len(hits) == 1
        h = hits[0]
        assert h.page_id == "delatre_3" and "[Bléry]" in h.snippet
        root = etree.parse(str(src)).getroot()
        line = next(tl for tl in root.iter("{*}TextLine") if tl.get("ID") == h.line_id)
        s = line.find("{*}String")
        assert boxes(h) == [tuple(int(round(float(s.get(a)))) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))]
        assert idx.search('"mon meilleur ami"')
        assert idx.search("meryon")


def test_search_in_small_rank_windows_finds_the_same_hits(idx: Index, monkeypatch):
    import htr.index.store as store

    full = [(h.page_id, h.line_id) for h in idx.search("notai* OR etat", limit=50)]
    assert len(full) == 5
    monkeypatch.setattr(store, "RANK_WINDOW", 1)  # one page per window: still every hit, ranks 1..n
    small = idx.search("notai* OR etat", limit=50)
    assert sorted((h.page_id, h.line_id) for h in small) == sorted(full)
    assert [h.rank for h in small] == [1, 2, 3, 4, 5]
    assert [(h.page_id, h.line_id) for h in idx.search("notai* OR etat", limit=2, offset=3)] == [
        (h.page_id, h.line_id) for h in small[3:5]
    ]
