// The reading room's front page: every document with its pages, and a search box.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  function renderDocuments(docs) {
    const root = $('documents');
    root.replaceChildren();
    for (const doc of docs) {
      const sec = document.createElement('section');
      sec.className = 'document';
      const h = document.createElement('h2');
      h.textContent = doc.label + ' (' + doc.pages.length + ' page' + (doc.pages.length === 1 ? '' : 's') + ')';
      const m = document.createElement('a');
      m.href = doc.manifest;
      m.className = 'manifest';
      m.textContent = 'IIIF manifest';
      h.append(' ', m);
      const grid = document.createElement('div');
      grid.className = 'grid';
      for (const p of doc.pages) {
        const a = document.createElement('a');
        a.href = p.view;
        a.className = 'page';
        const img = document.createElement('img');
        img.loading = 'lazy';
        img.src = p.thumb;
        img.alt = p.id;
        img.addEventListener('error', () => img.remove());
        const cap = document.createElement('span');
        cap.textContent = p.id;
        a.append(img, cap);
        grid.append(a);
      }
      sec.append(h, grid);
      root.append(sec);
    }
  }

  async function search(q) {
    const list = $('result-list');
    list.dataset.q = q;
    $('results').hidden = false;
    const res = await htrSearch.run(q);
    htrSearch.render(list, res.hits, null);
    $('result-note').textContent = res.hits.length
      ? res.hits.length + (res.more ? '+' : '') + ' hit(s) for «' + q + '»'
      : 'no hits for «' + q + '»';
  }

  function fail(err) {
    $('error').textContent = String(err.message || err);
    $('error').hidden = false;
  }

  document.addEventListener('DOMContentLoaded', () => {
    fetch('/api/documents').then((r) => r.json()).then((d) => renderDocuments(d.documents)).catch(fail);
    $('search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = $('q').value.trim();
      if (q) search(q).catch(fail);
    });
  });
})();
