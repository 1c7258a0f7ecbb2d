// IIIF Content Search 2.0 client shared by the reading room's pages: runs /search?q= and turns the
// answer into hits {page, prefix, exact, suffix, boxes: [[x, y, w, h], ...]} (boxes in page pixels).
'use strict';

const htrSearch = (() => {
  function canvasTarget(target) {
    // "{base}/canvas/{page}#xywh=x,y,w,h" -> {page, box}
    const m = /\/canvas\/([^/#]+)#xywh=(-?\d+),(-?\d+),(\d+),(\d+)$/.exec(target || '');
    if (!m) return null;
    return { page: decodeURIComponent(m[1]), box: [+m[2], +m[3], +m[4], +m[5]] };
  }

  function hitsOf(body) {
    const words = new Map();
    for (const item of body.items || []) {
      const t = canvasTarget(item.target);
      if (t) words.set(item.id, t);
    }
    const hits = [];
    for (const group of body.annotations || []) {
      for (const match of group.items || []) {
        const targets = Array.isArray(match.target) ? match.target : [match.target];
        const boxes = [];
        let page = null;
        let quote = null;
        for (const t of targets) {
          const w = words.get(t.source);
          if (!w) continue;
          page = page || w.page;
          boxes.push(w.box);
          for (const s of [].concat(t.selector || [])) {
            if (s.type === 'TextQuoteSelector') quote = s;
          }
        }
        if (page) {
          hits.push({ page, boxes, prefix: quote ? quote.prefix : '', exact: quote ? quote.exact : '',
                      suffix: quote ? quote.suffix : '' });
        }
      }
    }
    return hits;
  }

  async function run(q) {
    const r = await fetch('/search?q=' + encodeURIComponent(q));
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || ('search failed: ' + r.status));
    return { hits: hitsOf(body), more: Boolean(body.next) };
  }

  // <li><a>page: …prefix <mark>exact</mark> suffix…</a></li> for each hit; onPick(hit, k) on click
  function render(list, hits, onPick) {
    list.replaceChildren();
    hits.forEach((hit, k) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '/view/' + encodeURIComponent(hit.page) + '?q=' + encodeURIComponent(list.dataset.q || '') + '#hit=' + k;
      a.className = 'hit';
      a.dataset.page = hit.page;
      const page = document.createElement('span');
      page.className = 'hit-page';
      page.textContent = hit.page;
      const mark = document.createElement('mark');
      mark.textContent = hit.exact;
      a.append(page, ' …' + hit.prefix.slice(-40), mark, hit.suffix.slice(0, 40) + '…');
      if (onPick) {
        a.addEventListener('click', (ev) => { ev.preventDefault(); onPick(hit, k); });
      }
      li.append(a);
      list.append(li);
    });
  }

  return { run, render, hitsOf };
})();
