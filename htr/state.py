"""Resume state: one marker per page under OUT/.state, written last and atomically.

A page is skipped when its marker holds the same key (image sha256, page index,
model sha256s, output settings, pipeline version) and its ALTO and text exist
and the ALTO validates. Markers are per page, so several machines can share an
output tree without a shared database.
"""

from __future__ import annotations

import json
from pathlib import Path

from htr import atomic
from htr.config import RunSettings, digest
from htr.types import PageRef, PageResult

# Bump when a change in this code changes what a page's outputs contain.
PIPELINE_VERSION = "2"  # 2: named entities in the ALTO (preprocessing has its own version in the key)


def page_key(ref: PageRef, model_hashes: dict[str, str], settings: RunSettings) -> str:
    """The resume key of one page."""
    return digest(
        {
            "sha256": ref.sha256,
            "index": ref.index,
            "segmentation": ref.segmentation_sha256,
            "models": model_hashes,
            "settings": settings.output_settings(),
            "pipeline": PIPELINE_VERSION,
        }
    )


def alto_path(out: Path, page_id: str) -> Path:
    return out / "alto" / f"{page_id}.xml"


def text_path(out: Path, page_id: str) -> Path:
    return out / "text" / f"{page_id}.txt"


def thumb_path(out: Path, page_id: str) -> Path:
    return out / "thumbs" / f"{page_id}.jpg"


def marker_path(out: Path, page_id: str) -> Path:
    return out / ".state" / f"{page_id}.json"


def work_dir(out: Path) -> Path:
    """Normalised page images while a worker reads them (emptied at the start of every run)."""
    return out / ".work"


def running_path(out: Path, page_id: str) -> Path:
    """Exists while a worker processes the page: after a worker crash it names the suspects."""
    return out / ".state" / "running" / page_id


def write_marker(out: Path, result: PageResult) -> None:
    atomic.write_text(marker_path(out, result.page_id), json.dumps(result.to_dict(), ensure_ascii=False))


def read_marker(out: Path, page_id: str) -> PageResult | None:
    p = marker_path(out, page_id)
    try:
        return PageResult.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
        return None


def is_done(out: Path, page_id: str, key: str) -> PageResult | None:
    """The previous result if the page's outputs are complete, valid and made with `key`."""
    from alto.validate import is_valid

    prev = read_marker(out, page_id)
    if prev is None or prev.status != "done" or prev.key != key:
        return None
    for pid in prev.output_ids:
        alto = alto_path(out, pid)
        if not alto.is_file() or not text_path(out, pid).is_file() or not is_valid(alto):
            return None
    return prev


def remove_outputs(out: Path, page_ids: list[str], keep: list[str]) -> None:
    """Delete ALTO, text and thumbnail of `page_ids` not in `keep` (a page now split, or no longer split)."""
    for pid in page_ids:
        if pid not in keep:
            for p in (alto_path(out, pid), text_path(out, pid), thumb_path(out, pid)):
                p.unlink(missing_ok=True)
