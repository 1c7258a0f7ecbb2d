"""For portals: `htr search/index/entities/export/serve` sub-commands, Solr export, and the IIIF
Content Search 2.0 service run as a real uvicorn server on 127.0.0.1, queried with httpx."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from lxml import etree

from alto.writer import ALTO_NS
from cli.main import main, parser
from htr.index import rebuild
from htr.index.entities import Entity
from htr.index.export import SCHEMA_SNIPPET
from htr.index.samples import write_sample_alto

A = "{%s}" % ALTO_NS
CONTEXT = "http://iiif.io/api/search/2/context.json"
P1 = ["État de la France", "le 12 mars 1850 à Paris", "notaire notaire notaire"]
P2 = ["Les notaires de Paris", "notaire royal"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    o = tmp_path_factory.mktemp("portal") / "out"
    write_sample_alto(
        o,
        "p1",
        P1,
        [
            Entity("LOC", "Paris", "Paris", (("L2", 18, 23),)),
            Entity("DATE", "12 mars 1850", "1850-03-12", (("L2", 3, 15),)),
        ],
    )
    write_sample_alto(o, "p 2", P2, [Entity("LOC", "Paris", "Paris", (("L1", 16, 21),))])  # an id with a space
    rebuild(o)
    return o


def alto_xywh(path: Path, content: str) -> str:
    for s in etree.parse(str(path)).getroot().iter(A + "String"):
        if s.get("CONTENT") == content:
            return ",".join(s.get(a) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    raise AssertionError(content)


# --------------------------------------------------------------------------- CLI


def test_register_adds_the_subcommands():
    ap = parser()
    for argv in (
        ["index", "o"],
        ["search", "o", "q"],
        ["entities", "o"],
        ["export", "solr", "o", "-o", "d"],
        ["serve", "o"],
    ):
        args = ap.parse_args(argv)
        assert args.command == argv[0] and callable(args.func)


def test_cli_index_and_search(out: Path, capsys):
    assert main(["index", str(out)]) == 0
    assert "2 page(s) indexed" in capsys.readouterr().out
    assert main(["index", str(out), "--sync"]) == 0
    assert "2 unchanged" in capsys.readouterr().out
    assert main(["search", str(out), "etat"]) == 0
    text = capsys.readouterr().out
    assert "p1" in text and "[État] de la France" in text and "100,100,80,40" in text
    assert main(["search", str(out), "notai*", "--json", "--limit", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["hits"]) == 2 and res["hits"][0]["boxes"][0]["width"] > 0
    assert main(["search", str(out), "zzzz"]) == 0
    assert "no hits" in capsys.readouterr().out


def test_cli_malformed_query_is_one_line_exit_2(out: Path, capsys):
    assert main(["search", str(out), '"unclosed']) == 2
    err = capsys.readouterr().err
    assert err.startswith("htr: error:") and "unclosed quote" in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_missing_folder_or_index(tmp_path: Path, capsys):
    assert main(["search", str(tmp_path / "nope"), "x"]) == 2
    assert "no such output folder" in capsys.readouterr().err
    assert main(["search", str(tmp_path), "x"]) == 2
    assert "htr index" in capsys.readouterr().err


def test_cli_entities(out: Path, capsys):
    assert main(["entities", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:3] == ["LOC", "2", "Paris"] and "2 page(s): p 2, p1" in text[0]
    assert any(line.startswith("DATE") and "1850-03-12" in line for line in text)
    assert main(["entities", str(out), "--type", "DATE", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"type": "DATE", "normalised": "1850-03-12", "count": 1, "pages": ["p1"], "surfaces": ["12 mars 1850"]}
    ]
    assert main(["entities", str(out), "--type", "ORG"]) == 0
    assert "no entities of type ORG" in capsys.readouterr().out


# --------------------------------------------------------------------------- Solr


def test_solr_export(out: Path, tmp_path: Path, capsys):
    dest = tmp_path / "solr"
    assert main(["export", "solr", str(out), "-o", str(dest)]) == 0
    assert "2 document(s)" in capsys.readouterr().out
    docs = json.loads((dest / "docs.json").read_text(encoding="utf-8"))
    assert sorted(d["id"] for d in docs) == ["p 2", "p1"]
    assert len({d["id"] for d in docs}) == len(docs)
    for d in docs:
        assert (
            Path(d["ocr_text"]).is_absolute()
            and Path(d["ocr_text"]).resolve() == (out / "alto" / f"{d['id']}.xml").resolve()
        )
    p1 = next(d for d in docs if d["id"] == "p1")
    assert p1["entities_loc"] == ["Paris"] and p1["entities_date"] == ["1850-03-12"]
    schema = etree.fromstring(f"<schema>{(dest / 'schema-snippet.xml').read_text(encoding='utf-8')}</schema>")
    ft = schema.find("fieldType")
    assert ft.get("name") == "text_ocr" and ft.get("storeOffsetsWithPositions") == "true"
    filters = [c.get("class") for c in ft.find("analyzer[@type='index']").findall("charFilter")]
    assert filters == ["solrocr.ExternalUtf8ContentFilterFactory", "solrocr.OcrCharFilterFactory"]
    field = schema.find("field[@name='ocr_text']")
    assert field.get("type") == "text_ocr" and field.get("stored") == "true" and field.get("multiValued") == "false"
    assert (dest / "schema-snippet.xml").read_text(encoding="utf-8") == SCHEMA_SNIPPET
    etree.fromstring(f"<config>{(dest / 'solrconfig-snippet.xml').read_text(encoding='utf-8')}</config>")
    assert main(["export", "solr", str(out), "-o", str(dest), "--solr-path", "/srv/solr/alto/"]) == 0
    docs = json.loads((dest / "docs.json").read_text(encoding="utf-8"))
    assert sorted(d["ocr_text"] for d in docs) == ["/srv/solr/alto/p 2.xml", "/srv/solr/alto/p1.xml"]


# --------------------------------------------------------------------------- IIIF Content Search 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(out: Path):
    import uvicorn

    from htr.index.iiif import create_app
    from htr.index.store import index_path

    port = _free_port()
    base = "https://iiif.example.org/coll"
    app = create_app(index_path(out), base_url=base, page_size=2)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client, base
    srv.should_exit = True
    thread.join(10)


def test_iiif_hit_target_is_the_word_box_in_the_alto(server, out: Path):
    client, base = server
    r = client.get("/search", params={"q": "etat"}, headers={"Origin": "https://viewer.example.org"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    assert r.headers["access-control-allow-origin"] == "*"  # viewers (Mirador...) call it from elsewhere
    page = r.json()
    assert page["@context"] == CONTEXT
    assert page["type"] == "AnnotationPage"
    assert page["id"] == f"{base}/search?q=etat"
    assert "partOf" not in page and "next" not in page and "ignored" not in page
    (anno,) = page["items"]
    assert anno["type"] == "Annotation" and anno["motivation"] == "highlighting"
    assert anno["id"].startswith(f"{base}/annotation/")
    assert anno["body"] == {"type": "TextualBody", "value": "État", "format": "text/plain"}
    xywh = alto_xywh(out / "alto" / "p1.xml", "État")
    assert anno["target"] == f"{base}/canvas/p1#xywh={xywh}" == f"{base}/canvas/p1#xywh=100,100,80,40"
    (match_page,) = page["annotations"]
    (match,) = match_page["items"]
    assert match["motivation"] == "highlighting" and match["target"]["source"] == anno["id"]
    sel = match["target"]["selector"][0]
    assert (sel["type"], sel["prefix"], sel["exact"], sel["suffix"]) == (
        "TextQuoteSelector",
        "",
        "État",
        " de la France",
    )


def test_iiif_page_id_is_escaped_in_canvas_uri(server):
    client, base = server
    items = client.get("/search", params={"q": "royal"}).json()["items"]
    assert [a["target"].split("#")[0] for a in items] == [f"{base}/canvas/p%202"]


def test_iiif_empty_result(server):
    client, _ = server
    r = client.get("/search", params={"q": "zzzzz"})
    assert r.status_code == 200
    page = r.json()
    assert page["@context"] == CONTEXT and page["type"] == "AnnotationPage" and page["items"] == []
    assert "annotations" not in page and "next" not in page


@pytest.mark.parametrize("q, says", [('"unclosed', "unclosed quote"), ("NEAR(", "NEAR"), ("*", "*"), ("", "missing q")])
def test_iiif_malformed_query_is_a_400_with_a_json_error(server, q: str, says: str):
    client, _ = server
    r = client.get("/search", params={"q": q})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "Error" and says in body["error"] and "Traceback" not in r.text


def test_iiif_bad_page_number(server):
    client, _ = server
    r = client.get("/search", params={"q": "etat", "page": "-1"})
    assert r.status_code == 400 and "page" in r.json()["error"]


def test_iiif_ignored_parameters_are_listed(server):
    client, _ = server
    page = client.get("/search", params={"q": "etat", "motivation": "painting", "user": "x", "date": "y"}).json()
    assert page["ignored"] == ["date", "motivation", "user"]
    assert len(page["items"]) == 1


def test_iiif_paging(server):
    """notai*: 5 words in 3 hits (lines); 2 hits per page -> 2 pages, partOf/next/prev/startIndex."""
    client, base = server
    first = client.get("/search", params={"q": "notai*"}).json()
    assert first["id"] == f"{base}/search?q=notai%2A"
    assert first["partOf"]["type"] == "AnnotationCollection" and first["partOf"]["id"] == f"{base}/search?q=notai%2A"
    assert first["partOf"]["first"]["id"] == first["id"]
    assert first["startIndex"] == 0 and "prev" not in first
    assert first["next"] == {"id": f"{base}/search?q=notai%2A&page=1", "type": "AnnotationPage"}
    second = client.get("/search", params={"q": "notai*", "page": "1"}).json()
    assert second["startIndex"] == 2 and second["prev"]["id"] == first["id"] and "next" not in second
    seen = [a["id"] for a in first["items"] + second["items"]]
    assert len(seen) == len(set(seen)) == 5  # each matched word once
    assert client.get("/search", params={"q": "notai*", "page": "5"}).json()["items"] == []


def test_iiif_service_description(server):
    client, base = server
    desc = client.get("/").json()
    assert desc["@context"] == CONTEXT and desc["id"] == f"{base}/search" and desc["type"] == "SearchService2"
