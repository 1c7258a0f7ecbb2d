"""Check what the exports write: IIIF Presentation 3 JSON against the IIIF JSON schema, METS
against the METS 1.12.1 XSD (both vendored in htr/portal/schemas, see its README; offline)."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from htr.errors import ExportError, HTRError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
IIIF_SCHEMA = SCHEMA_DIR / "iiif_3_0.json"
METS_XSD = SCHEMA_DIR / "mets.xsd"

_xsd_lock = threading.Lock()  # an lxml XMLSchema keeps its error log on the object


_CLASSES = {
    "Manifest": "manifest",
    "Collection": "collection",
    "AnnotationPage": "annotationPage",
    "AnnotationCollection": "annotationCollection",
}


@functools.lru_cache(maxsize=8)
def _iiif_validator(cls: str | None = None) -> Any:
    """The whole schema (cls None), or the schema narrowed to one class (for readable messages)."""
    from jsonschema import Draft7Validator

    try:
        schema = json.loads(IIIF_SCHEMA.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read schema: {exc}", path=str(IIIF_SCHEMA)) from exc
    if cls is not None:
        schema["oneOf"] = [{"$ref": f"#/classes/{cls}"}]
    return Draft7Validator(schema)


def iiif_problems(doc: dict[str, Any], limit: int = 20) -> list[str]:
    """Schema errors of a Manifest, Collection or AnnotationPage (empty list: valid).

    Validity is decided by the whole schema; the messages come from the class named by the
    document's `type` (the whole schema's top-level oneOf only says that no class matched).
    """
    from jsonschema.exceptions import best_match

    if _iiif_validator().is_valid(doc):
        return []
    cls = _CLASSES.get(doc.get("type", "") if isinstance(doc, dict) else "")
    out = []
    for err in _iiif_validator(cls).iter_errors(doc):
        best = best_match(err.context) if err.context else err  # oneOf/anyOf: the closest branch
        best = best or err
        where = "/".join(str(p) for p in best.absolute_path) or "(root)"
        out.append(f"{where}: {best.message[:300]}")
        if len(out) >= limit:
            break
    return out or ["(root): matches none of Manifest, Collection, AnnotationCollection, AnnotationPage"]


@functools.lru_cache(maxsize=1)
def _mets_schema() -> etree.XMLSchema:
    from alto.validate import schema  # redirects the xlink import to the vendored xlink.xsd

    try:
        return schema(METS_XSD)
    except HTRError as exc:  # AltoError (or XmlError) naming the file
        raise ExportError(f"cannot load METS schema: {exc}", path=str(METS_XSD)) from exc


def mets_problems(tree: etree._ElementTree | etree._Element) -> list[str]:
    """XSD errors of a METS document (empty list: valid)."""
    xsd = _mets_schema()
    with _xsd_lock:
        ok = xsd.validate(tree)
        return [] if ok else [f"line {e.line}: {e.message}" for e in xsd.error_log]


def check_iiif(doc: dict[str, Any], path: str | Path) -> None:
    """Raise ExportError (naming `path`) when `doc` does not validate."""
    problems = iiif_problems(doc, limit=1)
    if problems:
        raise ExportError(f"IIIF schema: {problems[0]}", path=str(path))


def check_mets(tree: etree._ElementTree | etree._Element, path: str | Path) -> None:
    problems = mets_problems(tree)
    if problems:
        raise ExportError(f"METS schema: {problems[0]}", path=str(path))
