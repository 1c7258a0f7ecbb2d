"""`htr serve`: the reading room run as a real uvicorn server on 127.0.0.1: read-only, nothing
outside OUT (or not listed) is ever served, page images capped and drawn from the right page,
manifests valid for the host they are asked on, search targets on the manifests' canvases,
report.html links every page to its view."""

from __future__ import annotations

import http.client
import json
import re
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image
from portal_sample import SYN_SIZE, TIFF_COLOURS, A, alto_lines, reading_order_lines, start_server

from cli.main import parser
from htr.portal.validate import iiif_problems

SECRET = "s3cr3t-not-for-the-web"
IMAGE_SIZE = 300


@pytest.fixture(scope="module")
def room(portal_synthetic_out: Path):
    from htr.portal.server import create_app

    out = portal_synthetic_out
    (out.parent / "secret.txt").write_text(SECRET)  # beside OUT
    (out / "secret.txt").write_text(SECRET)  # inside OUT, but not a file the room lists
    srv, thread, port = start_server(create_app(out, max_side=IMAGE_SIZE, low_confidence=0.5))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client, port, out
    srv.should_exit = True
    thread.join(10)


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client-side normalisation of `..` or `%2F`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


TRAVERSALS = [
    "/static/../../secret.txt",
    "/static/%2e%2e/%2e%2e/secret.txt",
    "/static/..%2F..%2F..%2Fsecret.txt",
    "/static/%2Fetc%2Fpasswd",
    "/static//etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/images/..%2F..%2Fsecret.jpg",
    "/images/%2e%2e%2fsecret.txt",
    "/images/../secret.txt",
    "/alto/..%2Fsecret.txt",
    "/alto/..%2F..%2Fsecret.xml",
    "/alto/%2e%2e%2frun.json",
    "/text/..%2Fsecret.txt",
    "/thumbs/..%2F..%2Fsecret.jpg",
    "/view/..%2F..%2Fsecret.txt",
    "/iiif/..%2F..%2F/manifest.json",
    "/iiif/lettres/lines/..%2F..%2F..%2Fsecret.json",
    "/iiif/lettres/..%2F..%2Fsecret/a.json",
    "/api/page/..%2F..%2Fsecret.txt",
    "/secret.txt",
    "/run.json",
    "/index.sqlite",
    "/alto/",
    "/images/",
    "/static/",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_outside_out_or_not_listed_is_served(room, path: str):
    _, port, _ = room
    status, body = raw_get(port, path)
    assert status in (400, 404), (path, status)
    assert SECRET.encode() not in body and b"root:" not in body


def test_read_only_and_bound_to_localhost_by_default(room):
    client, _, _ = room
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/page/a").status_code == 405
        assert client.request(method, "/search?q=x").status_code == 405
    assert parser().parse_args(["serve", "OUT"]).host == "127.0.0.1"


def test_serving_a_folder_that_is_not_an_output_is_a_one_line_error(tmp_path: Path, capsys):
    from cli.main import main

    assert main(["serve", str(tmp_path), "--port", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("htr: error:") and str(tmp_path) in err[-1] and "alto/" in err[-1]


def test_listed_files_are_served(room):
    client, _, out = room
    r = client.get("/alto/a.xml")
    assert r.status_code == 200 and r.content == (out / "alto" / "a.xml").read_bytes()
    assert client.get("/report.html").status_code == 200
    assert client.get("/static/viewer.js").status_code == 200
    assert client.get("/view/a").status_code == 200 and "viewer.js" in client.get("/view/a").text
    assert client.get("/view/nosuchpage").status_code == 404
    assert client.get("/images/orphan.jpg").status_code == 404  # its source is gone


def test_page_images_are_capped_and_drawn_from_their_page(room):
    client, _, _ = room
    for n, colour in enumerate(TIFF_COLOURS, 1):
        r = client.get(f"/images/registre_p{n:04d}.jpg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        with Image.open(BytesIO(r.content)) as im:
            assert max(im.size) == IMAGE_SIZE
            assert im.size[0] / im.size[1] == pytest.approx(SYN_SIZE[0] / SYN_SIZE[1], rel=0.01)
            mean = [sum(ch) / len(ch) for ch in zip(*im.convert("RGB").getdata())]
        assert mean == pytest.approx(colour, abs=8)


def test_manifest_is_valid_for_the_host_it_is_asked_on_and_search_hits_its_canvases(room):
    client, port, _ = room
    base = f"http://127.0.0.1:{port}"
    m = client.get("/iiif/lettres/manifest.json").json()
    assert iiif_problems(m) == []
    assert m["id"] == f"{base}/iiif/lettres/manifest.json"
    assert m["service"] == [{"id": f"{base}/search", "type": "SearchService2"}]
    canvases = [c["id"] for c in m["items"]]
    words = client.get("/iiif/lettres/words/b.json").json()
    assert iiif_problems(words) == [] and words["id"] == f"{base}/iiif/lettres/words/b.json"
    assert client.get("/iiif/registre/words/b.json").status_code == 404  # page of another document
    assert client.get("/iiif/lettres/other/b.json").status_code == 404
    hits = client.get("/search", params={"q": "commence"}).json()
    targets = {a["target"].split("#")[0] for a in hits["items"]}
    assert targets == {f"{base}/canvas/a", f"{base}/canvas/b"} and targets <= set(canvases)
    assert iiif_problems(client.get("/iiif/collection.json").json()) == []
    info = client.get("/search/info").json()
    assert (info["id"], info["type"]) == (m["service"][0]["id"], "SearchService2")


def test_api_page_is_the_alto_in_reading_order_with_low_confidence_and_neighbours(room):
    client, _, out = room

    p = client.get("/api/page/c-L").json()
    assert (p["position"], p["count"], p["prev"], p["next"]) == (3, 4, "b", "c-R")
    alto = out / "alto" / "c-L.xml"
    assert [(ln["id"], ln["text"], tuple(ln["box"])) for ln in p["lines"]] == alto_lines(alto)
    wcs = [float(s.get("WC")) for tl in reading_order_lines(alto) for s in tl.iter(A + "String")]
    assert [w["low"] for ln in p["lines"] for w in ln["words"]] == [wc < 0.5 for wc in wcs]
    assert any(wc < 0.5 for wc in wcs) and any(wc >= 0.5 for wc in wcs)
    assert p["image"] == "/images/c-L.jpg" and p["document"]["id"] == "lettres"


def test_report_links_every_page_to_its_view(room):
    client, _, out = room
    html = client.get("/report.html").text
    links = re.findall(r"href='(view/[^']+)'", html)
    run = json.loads((out / "run.json").read_text())
    pages = [pid for r in run["pages"] for pid in (r["parts"] or [r["page_id"]])]
    assert sorted(set(links)) == sorted(f"view/{p}" for p in pages)
    for link in set(links):
        assert client.get("/" + link).status_code == 200
