// The reading room's page viewer: the page image (OpenSeadragon) beside its text, lines highlighted
// both ways, low-confidence words marked, search hits shown as boxes on the image, entities listed.
// Boxes come in ALTO page pixels; OpenSeadragon's viewport has the image width as 1, and the page
// image has the ALTO page's aspect ratio, so a box maps to viewport units by dividing by page width.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { page: null, viewer: null, hits: [], lineBoxes: new Map(), textLines: new Map(), wordSpans: new Map(),
                  query: '' };
  window.htrViewer = state; // for tests and for curious archivists in the console

  function pageIdFromPath() {
    const m = /\/view\/([^/]+)$/.exec(location.pathname);
    return m ? decodeURIComponent(m[1]) : null;
  }

  async function fetchJSON(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
    return r.json();
  }

  function toViewport(box) {
    const W = state.page.width;
    return new OpenSeadragon.Rect(box[0] / W, box[1] / W, box[2] / W, box[3] / W);
  }

  function setActive(lineId, on) {
    const t = state.textLines.get(lineId);
    const b = state.lineBoxes.get(lineId);
    if (t) t.classList.toggle('active', on);
    if (b) b.classList.toggle('active', on);
  }

  function select(lineId, fromImage) {
    for (const el of document.querySelectorAll('.line.selected, .line-box.selected')) el.classList.remove('selected');
    const t = state.textLines.get(lineId);
    const b = state.lineBoxes.get(lineId);
    if (t) t.classList.add('selected');
    if (b) b.classList.add('selected');
    if (fromImage && t) t.scrollIntoView({ block: 'nearest' });
    if (!fromImage && b && state.viewer) {
      const line = state.page.lines.find((l) => l.id === lineId);
      if (line) state.viewer.viewport.fitBoundsWithConstraints(toViewport(pad(line.box, 0.5)));
    }
  }

  function pad(box, f) {
    const dx = Math.round(box[2] * f / 2);
    const dy = Math.round(box[3] * 2);
    return [box[0] - dx, box[1] - dy, box[2] + 2 * dx, box[3] + 2 * dy];
  }

  function renderText(page) {
    const lines = $('lines');
    lines.replaceChildren();
    state.textLines.clear();
    state.wordSpans.clear();
    for (const line of page.lines) {
      const div = document.createElement('div');
      div.className = 'line';
      div.dataset.lineId = line.id;
      const text = document.createElement('span');
      text.className = 'line-text';
      line.words.forEach((w, k) => {
        if (k) text.append(' ');
        const span = document.createElement('span');
        span.className = 'word' + (w.low ? ' low' : '');
        span.textContent = w.text;
        if (w.wc !== null) span.title = 'confidence ' + w.wc.toFixed(2);
        text.append(span);
        state.wordSpans.set(w.box.join(','), span);
      });
      div.append(text);
      div.addEventListener('mouseenter', () => setActive(line.id, true));
      div.addEventListener('mouseleave', () => setActive(line.id, false));
      div.addEventListener('click', () => select(line.id, false));
      lines.append(div);
      state.textLines.set(line.id, div);
    }
    const low = page.lines.reduce((n, l) => n + l.words.filter((w) => w.low).length, 0);
    $('low-note').textContent = low
      ? low + ' word(s) read with confidence below ' + page.low_confidence + ' are underlined.'
      : '';
  }

  function renderEntities(page) {
    const ul = $('entities');
    ul.replaceChildren();
    for (const e of page.entities) {
      const li = document.createElement('li');
      li.className = 'entity';
      li.dataset.type = e.type;
      const type = document.createElement('span');
      type.className = 'entity-type';
      type.textContent = e.type;
      li.append(type, ' ' + e.surface);
      if (e.normalised && e.normalised !== e.surface) li.append(' → ' + e.normalised);
      if (e.line_id) {
        li.addEventListener('mouseenter', () => setActive(e.line_id, true));
        li.addEventListener('mouseleave', () => setActive(e.line_id, false));
        li.addEventListener('click', () => select(e.line_id, false));
      }
      ul.append(li);
    }
    $('no-entities').hidden = page.entities.length > 0;
  }

  function renderOverlays(page) {
    const v = state.viewer;
    v.clearOverlays();
    state.lineBoxes.clear();
    for (const line of page.lines) {
      const el = document.createElement('div');
      el.className = 'line-box';
      el.dataset.lineId = line.id;
      el.addEventListener('mouseenter', () => setActive(line.id, true));
      el.addEventListener('mouseleave', () => setActive(line.id, false));
      new OpenSeadragon.MouseTracker({ element: el, clickHandler: () => select(line.id, true) });
      v.addOverlay({ element: el, location: toViewport(line.box) });
      state.lineBoxes.set(line.id, el);
    }
  }

  function showHits(boxes) {
    const v = state.viewer;
    for (const el of document.querySelectorAll('.hit-box')) v.removeOverlay(el);
    for (const el of document.querySelectorAll('.word.hit')) el.classList.remove('hit');
    state.hits = boxes;
    document.body.dataset.hits = '0';
    if (!boxes.length) return;
    boxes.forEach((box, k) => {
      const el = document.createElement('div');
      el.className = 'hit-box';
      el.dataset.box = box.join(',');
      el.dataset.k = String(k);
      v.addOverlay({ element: el, location: toViewport(box) });
      const span = state.wordSpans.get(box.join(','));
      if (span) {
        span.classList.add('hit');
        if (k === 0) span.scrollIntoView({ block: 'nearest' });
      }
    });
    const x0 = Math.min(...boxes.map((b) => b[0]));
    const y0 = Math.min(...boxes.map((b) => b[1]));
    const x1 = Math.max(...boxes.map((b) => b[0] + b[2]));
    const y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
    const w = state.page.width;
    const h = Math.max(y1 - y0, state.page.height / 3);
    const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), Math.max(lo, hi));
    const bx = clamp((x0 + x1 - w) / 2, 0, state.page.width - w);
    const by = clamp((y0 + y1 - h) / 2, 0, state.page.height - h);
    const bounds = toViewport([bx, by, w, h]);
    v.viewport.fitBoundsWithConstraints(bounds, true);
    v.forceRedraw();
    document.body.dataset.hits = String(boxes.length);
  }

  function renderHeader(page) {
    document.title = page.id + ' — ' + page.document.label;
    $('doc-label').textContent = page.document.label;
    $('position').textContent = 'page ' + page.position + ' / ' + page.count + ' · ' + page.id;
    $('prev').disabled = !page.prev;
    $('next').disabled = !page.next;
    $('alto-link').href = page.alto;
    $('manifest-link').href = page.document.manifest;
  }

  async function loadPage(pid, opts = {}) {
    document.body.dataset.page = '';
    const page = await fetchJSON('/api/page/' + encodeURIComponent(pid));
    state.page = page;
    renderHeader(page);
    renderText(page);
    renderEntities(page);
    if (opts.push) {
      const q = state.query ? '?q=' + encodeURIComponent(state.query) : '';
      history.pushState({ page: pid }, '', '/view/' + encodeURIComponent(pid) + q);
    }
    $('no-image').hidden = Boolean(page.image);
    if (!page.image) {
      state.viewer.close();
      document.body.dataset.page = pid;
      return;
    }
    await new Promise((resolve) => {
      const v = state.viewer;
      const done = () => {
        v.removeHandler('open', opened);
        v.removeHandler('open-failed', failed);
      };
      const opened = () => {
        done();
        renderOverlays(page);
        showHits(opts.hits || []);
        resolve();
      };
      const failed = () => {
        done();
        $('no-image').hidden = false;
        resolve();
      };
      v.addHandler('open', opened);
      v.addHandler('open-failed', failed);
      v.open({ type: 'image', url: page.image, buildPyramid: false });
    });
    document.body.dataset.page = pid;
  }

  function pick(hit) {
    if (state.page && hit.page === state.page.id) {
      showHits(hit.boxes);
    } else {
      loadPage(hit.page, { hits: hit.boxes, push: true }).catch(fail);
    }
  }

  async function search(q, hitIndex) {
    state.query = q;
    const list = $('result-list');
    list.dataset.q = q;
    $('results').hidden = false;
    $('result-note').textContent = 'searching…';
    const res = await htrSearch.run(q);
    htrSearch.render(list, res.hits, pick);
    $('result-note').textContent = res.hits.length
      ? res.hits.length + (res.more ? '+' : '') + ' hit(s) for «' + q + '»'
      : 'no hits for «' + q + '»';
    document.body.dataset.results = String(res.hits.length);
    if (hitIndex !== null && res.hits[hitIndex]) pick(res.hits[hitIndex]);
  }

  function fail(err) {
    $('error').textContent = String(err.message || err);
    $('error').hidden = false;
  }

  function start() {
    if (typeof OpenSeadragon === 'undefined') {
      fail('OpenSeadragon is missing: run `make viewer` in the htr-enrich checkout');
      return;
    }
    state.viewer = OpenSeadragon({
      element: $('osd'),
      showNavigationControl: false,
      gestureSettingsMouse: { clickToZoom: false },
      animationTime: 0.6,
      minZoomImageRatio: 0.5,
      maxZoomPixelRatio: 4,
    });
    $('prev').addEventListener('click', () => state.page.prev && loadPage(state.page.prev, { push: true }).catch(fail));
    $('next').addEventListener('click', () => state.page.next && loadPage(state.page.next, { push: true }).catch(fail));
    $('search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = $('q').value.trim();
      if (q) search(q, null).catch(fail);
    });
    window.addEventListener('popstate', () => {
      const pid = pageIdFromPath();
      if (pid) loadPage(pid).catch(fail);
    });
    const params = new URLSearchParams(location.search);
    const q = params.get('q');
    const hit = /#hit=(\d+)/.exec(location.hash);
    const pid = pageIdFromPath();
    const loaded = loadPage(pid);
    loaded.then(() => {
      if (q) {
        $('q').value = q;
        return search(q, hit ? Number(hit[1]) : null);
      }
      return null;
    }).catch(fail);
  }

  document.addEventListener('DOMContentLoaded', start);
})();
