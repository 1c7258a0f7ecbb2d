"""The reading room in a real browser: Debian's chromium driven by selenium through chromium-driver
(both installed by .ci/run). On one real ground-truth page (tests/portal_sample.py) the viewer must
show the ALTO's lines in reading order, mark the low-confidence words, list the entity, highlight
lines both ways, and a search for a word must put a box on the image exactly where the ALTO says.
Every wait is on a DOM condition, with generous timeouts: nothing depends on the machine's speed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from lxml import etree
from portal_sample import A, alto_lines, page_size, reading_order_lines, start_server

selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[test]')")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = Path(os.environ.get("HTR_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("HTR_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,900",
]
PAGE = "13_3536f_default"
TOLERANCE_PX = 3
WAIT_S = 90
VIEWER_JS = Path(__file__).resolve().parent.parent / "htr" / "portal" / "static" / "vendor" / "openseadragon.min.js"

pytestmark = [pytest.mark.gt, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"Debian chromium + chromium-driver missing ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    if not VIEWER_JS.is_file():
        pytest.skip(f"{VIEWER_JS} missing: run `make viewer` (make test does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in FLAGS:
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def room(portal_gt_out: Path):
    from htr.portal.server import create_app

    srv, thread, port = start_server(create_app(portal_gt_out))
    yield f"http://127.0.0.1:{port}", portal_gt_out
    srv.should_exit = True
    thread.join(10)


def wait(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=f"waited {WAIT_S} s for {what}")


def unique_word(alto: Path) -> tuple[str, tuple[int, int, int, int]]:
    """A recognised word that occurs once on the page (letters only, 7+), with its ALTO box."""
    strings = [s for tl in reading_order_lines(alto) for s in tl.iter(A + "String")]
    contents = [s.get("CONTENT") for s in strings]
    for s in strings:
        c = s.get("CONTENT")
        if len(c) >= 7 and c.isascii() and c.isalpha() and contents.count(c) == 1:
            return c, tuple(int(s.get(a)) for a in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    raise AssertionError("no unique word on the page")


RECT_JS = """
const [x, y, w, h, W, H] = arguments;
const el = document.querySelector('.hit-box');
if (!el) return null;
const r = el.getBoundingClientRect();
const v = window.htrViewer.viewer, ti = v.world.getItemAt(0), cs = ti.getContentSize();
const a = ti.imageToViewerElementCoordinates(new OpenSeadragon.Point(x * cs.x / W, y * cs.y / H));
const b = ti.imageToViewerElementCoordinates(new OpenSeadragon.Point((x + w) * cs.x / W, (y + h) * cs.y / H));
const c = v.element.getBoundingClientRect();
return {got: [r.left, r.top, r.width, r.height], want: [c.left + a.x, c.top + a.y, b.x - a.x, b.y - a.y],
        pane: [c.left, c.top, c.right, c.bottom], box: el.dataset.box};
"""


def test_viewer_reads_highlights_and_finds_words_where_the_alto_says(browser, room, tmp_path: Path):
    base, out = room
    alto = out / "alto" / f"{PAGE}.xml"
    browser.get(f"{base}/view/{PAGE}")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.page") == PAGE, "the page to load")

    # the text panel: the ALTO's lines in reading order (which here is not document order)
    shown = browser.execute_script("return [...document.querySelectorAll('#lines .line')].map(e => e.textContent)")
    expected = [text for _, text, _ in alto_lines(alto)]
    assert shown == expected
    root = etree.parse(str(alto)).getroot()
    document_order = [" ".join(s.get("CONTENT") for s in tl.iter(A + "String")) for tl in root.iter(A + "TextLine")]
    assert document_order != expected  # so the comparison above can tell the two apart

    # low-confidence words are marked; the entity is listed
    wcs = [float(s.get("WC")) for s in root.iter(A + "String")]
    low = browser.execute_script("return document.querySelectorAll('#lines .word.low').length")
    assert low == sum(wc < 0.5 for wc in wcs) > 0
    entities = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#entities .entity")]
    assert entities == ["ORG Estampes → Cabinet des Estampes"]

    # hover a text line -> its box on the image lights up; click a box on the image -> its text line
    line_ids = [lid for lid, _, _ in alto_lines(alto)]
    text_line = browser.find_element(By.CSS_SELECTOR, f"#lines .line[data-line-id='{line_ids[2]}']")
    ActionChains(browser).move_to_element(text_line).perform()
    box_sel = f".line-box[data-line-id='{line_ids[2]}']"
    wait(browser, lambda d: "active" in d.find_element(By.CSS_SELECTOR, box_sel).get_attribute("class"), "box lit")
    other = browser.find_element(By.CSS_SELECTOR, f".line-box[data-line-id='{line_ids[5]}']")
    ActionChains(browser).move_to_element(other).click().perform()
    sel = f"#lines .line[data-line-id='{line_ids[5]}']"
    wait(browser, lambda d: "selected" in d.find_element(By.CSS_SELECTOR, sel).get_attribute("class"), "line selected")

    # search a recognised word, jump to the hit: the box is where the ALTO String is
    word, (x, y, w, h) = unique_word(alto)
    W, H = page_size(alto)
    browser.find_element(By.ID, "q").send_keys(word)
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    hits = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#result-list a.hit[data-page='{PAGE}']"), "hits")
    assert len(hits) == 1 and word in hits[0].text
    hits[0].click()
    wait(browser, lambda d: d.execute_script("return document.body.dataset.hits") == "1", "the hit box")
    last: dict = {}

    def in_place(d) -> bool:
        last.update(d.execute_script(RECT_JS, x, y, w, h, W, H) or {})
        return bool(last) and all(abs(g - e) <= TOLERANCE_PX for g, e in zip(last["got"], last["want"]))

    try:
        wait(browser, in_place, "the hit box to sit on the word")
    except Exception as exc:  # say where it was
        raise AssertionError(f"hit box {last.get('got')} != ALTO box on screen {last.get('want')}") from exc
    assert last["box"] == f"{x},{y},{w},{h}"
    gx, gy, gw, gh = last["got"]
    left, top, right, bottom = last["pane"]
    assert left <= gx and gx + gw <= right and top <= gy and gy + gh <= bottom  # jumped into view
    assert gw > 10 and gh > 5
    marked = browser.execute_script("return [...document.querySelectorAll('#lines .word.hit')].map(e => e.textContent)")
    assert marked == [word]

    shot = tmp_path / "viewer.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("HTR_VIEWER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["HTR_VIEWER_SCREENSHOT"])
