"""Export for portals: documents and schema for the dbmdz Solr OCR Highlighting plugin.

The plugin indexes and highlights OCR files in place: each Solr document's OCR field holds a
*source pointer*, the path of the ALTO file as Solr sees it (one file per document), and the
field type's index analyzer starts with `ExternalUtf8ContentFilterFactory` (reads the file) and
`OcrCharFilterFactory` (ALTO -> text with coordinates). See the plugin's installation and
indexing docs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from htr import atomic
from htr.errors import ConfigError
from htr.index.store import Index, alto_files, index_path

SCHEMA_SNIPPET = """<!-- Fields for `htr export solr` documents (dbmdz solr-ocrhighlighting plugin).
     Add to the core's schema.xml / managed-schema. When the plugin is installed with Solr's
     package manager, prefix the plugin classes with `ocrhighlighting:`. -->
<fieldType name="text_ocr" class="solr.TextField" storeOffsetsWithPositions="true" termVectors="true">
  <analyzer type="index">
    <!-- the field value is the path of the ALTO file: the plugin reads it from disk -->
    <charFilter class="solrocr.ExternalUtf8ContentFilterFactory"/>
    <charFilter class="solrocr.OcrCharFilterFactory"/>
    <tokenizer class="solr.StandardTokenizerFactory"/>
    <filter class="solr.LowerCaseFilterFactory"/>
    <filter class="solr.ASCIIFoldingFilterFactory"/>
  </analyzer>
  <analyzer type="query">
    <tokenizer class="solr.StandardTokenizerFactory"/>
    <filter class="solr.LowerCaseFilterFactory"/>
    <filter class="solr.ASCIIFoldingFilterFactory"/>
  </analyzer>
</fieldType>

<!-- `id` (the page id) is the usual uniqueKey string field. -->
<field name="ocr_text" type="text_ocr" multiValued="false" indexed="true" stored="true"/>
<field name="page_id" type="string" indexed="true" stored="true"/>
<field name="entities_per" type="string" indexed="true" stored="true" multiValued="true"/>
<field name="entities_loc" type="string" indexed="true" stored="true" multiValued="true"/>
<field name="entities_org" type="string" indexed="true" stored="true" multiValued="true"/>
<field name="entities_date" type="string" indexed="true" stored="true" multiValued="true"/>
<field name="entities_misc" type="string" indexed="true" stored="true" multiValued="true"/>
"""

SOLRCONFIG_SNIPPET = """<!-- Add to solrconfig.xml (see the plugin's installation docs). -->
<searchComponent class="solrocr.OcrHighlightComponent" name="ocrHighlight"/>
<requestHandler name="/select" class="solr.SearchHandler">
  <arr name="components">
    <str>query</str>
    <str>ocrHighlight</str>
    <str>highlight</str>
  </arr>
</requestHandler>
"""

README = """Documents for the Solr OCR Highlighting plugin (https://github.com/dbmdz/solr-ocrhighlighting)

docs.json            one document per page: id (page id), ocr_text (path of its ALTO file), entities
schema-snippet.xml   fieldType text_ocr + fields to add to the core's schema
solrconfig-snippet.xml  the plugin's search component and request handler

The ALTO files must be readable by Solr at the paths in ocr_text (use --solr-path when Solr sees
OUT/alto under another path). Then:

  curl -H 'Content-Type: application/json' 'http://SOLR:8983/solr/CORE/update?commit=true' --data-binary @docs.json
  curl 'http://SOLR:8983/solr/CORE/select?q=ocr_text:etat&hl=true&hl.ocr.fl=ocr_text'
"""


def solr_docs(out_dir: str | Path, solr_path: str | None = None) -> list[dict[str, Any]]:
    """One document per page of OUT/alto: `id` and `page_id` (the page id), `ocr_text` (ALTO path
    as Solr sees it: `solr_path`/<page-id>.xml, default the file's absolute path), plus the page's
    entity forms from the index when there is one."""
    files = alto_files(out_dir)
    ents: dict[str, dict[str, list[str]]] = {}
    ipath = index_path(out_dir)
    if ipath.is_file():
        with Index.open(ipath, readonly=True) as idx:
            for pid, t, norm in idx.conn.execute(
                "SELECT p.page_id, e.type, e.normalised FROM entities e JOIN pages p ON p.doc = e.doc ORDER BY e.doc, e.n"
            ):
                lst = ents.setdefault(pid, {}).setdefault(t.lower(), [])
                if norm not in lst:
                    lst.append(norm)
    docs = []
    seen: set[str] = set()
    for pid, f in files.items():
        if pid in seen:  # cannot happen: one file name per page id
            raise ConfigError(f"page id {pid!r} twice", path=str(f))
        seen.add(pid)
        path = f"{solr_path.rstrip('/')}/{f.name}" if solr_path else str(f.resolve())
        doc: dict[str, Any] = {"id": pid, "page_id": pid, "ocr_text": path}
        for t, forms in sorted(ents.get(pid, {}).items()):
            if t in ("per", "loc", "org", "date", "misc"):
                doc[f"entities_{t}"] = forms
        docs.append(doc)
    return docs


def export_solr(out_dir: str | Path, dest: str | Path, solr_path: str | None = None) -> dict[str, Any]:
    """Write docs.json, schema-snippet.xml, solrconfig-snippet.xml and README.txt into `dest`."""
    out_dir, dest = Path(out_dir), Path(dest)
    if not (out_dir / "alto").is_dir():
        raise ConfigError("no alto/ folder here: not an output folder of htr enrich", path=str(out_dir))
    docs = solr_docs(out_dir, solr_path)
    atomic.write_text(dest / "docs.json", json.dumps(docs, ensure_ascii=False, indent=1) + "\n")
    atomic.write_text(dest / "schema-snippet.xml", SCHEMA_SNIPPET)
    atomic.write_text(dest / "solrconfig-snippet.xml", SOLRCONFIG_SNIPPET)
    atomic.write_text(dest / "README.txt", README)
    return {"docs": len(docs), "dest": str(dest)}
