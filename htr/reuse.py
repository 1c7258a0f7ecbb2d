"""Re-recognition of existing segmentations: lines and reading order from ALTO/PAGE (e.g. an eScriptorium export).

Only the text is read again; line ids and geometry are kept.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from alto.gt import find_gt_files, read_gt
from core.geometry import clamp_points
from core.hashing import file_sha256
from htr.errors import HTRError, InputError
from htr.images import page_id_for
from htr.types import Line, PageRef, PageSegmentation


def discover(sources: list[str], fmt: str) -> tuple[list[PageRef], list[tuple[str, str]]]:
    """One PageRef per ALTO (`fmt="alto"`) or PAGE (`fmt="page"`) file found, pointing at its image."""
    want = {"alto": "alto", "page": "page"}[fmt]
    refs: list[PageRef] = []
    ignored: list[tuple[str, str]] = []
    seen: set[str] = set()
    for src in sources:
        top = Path(os.path.abspath(src))
        problems: list[tuple[str, str]] = []  # refused, not well-formed, not ALTO/PAGE: listed, never silent
        found = find_gt_files([top], prefer=want, problems=problems)
        ignored += [(p, f"cannot use as segmentation: {why}") for p, why in problems]
        for xml in found:
            try:
                page = read_gt(xml)
            except Exception as e:  # noqa: BLE001 - file-isolation boundary: one bad file is listed, the rest goes on
                msg = str(e).removeprefix(f"{xml}: ")
                ignored.append((str(xml), f"cannot use as segmentation: {msg}"))
                continue
            if page.format != want:
                ignored.append((str(xml), f"{page.format.upper()} file, --segmentation-from {fmt} asked"))
                continue
            image = page.image_path
            assert image is not None  # read_gt found it, or raised
            rel = xml.relative_to(top).as_posix() if top.is_dir() else xml.name
            pid = page_id_for(rel)
            if pid in seen:
                pid = f"{pid}-{hashlib.sha1(str(xml).encode()).hexdigest()[:8]}"
            seen.add(pid)
            refs.append(
                PageRef(
                    pid,
                    str(image),
                    0,
                    file_sha256(image),
                    1,
                    segmentation=str(xml),
                    segmentation_sha256=file_sha256(xml),
                )
            )
    return refs, ignored


def segmentation_of(ref: PageRef, width: int, height: int) -> PageSegmentation:
    """The lines of `ref.segmentation` in its reading order (alto.reader), ids and geometry kept
    (lines without polygon dropped)."""
    try:
        gt = read_gt(ref.segmentation)
    except HTRError as e:  # the reader says XmlError, AltoError or InputError, naming the file
        raise InputError(f"cannot read segmentation: {e}", path=ref.segmentation, page_id=ref.id) from e
    if (gt.width, gt.height) != (width, height):
        raise InputError(
            f"segmentation is for a {gt.width}x{gt.height} image but {ref.source} is {width}x{height}",
            path=ref.segmentation,
            page_id=ref.id,
        )
    lines = tuple(
        Line(ln.id, clamp_points(ln.baseline, width, height), clamp_points(ln.polygon, width, height), ln.region_id)
        for ln in gt.lines
        if len(ln.polygon) >= 3 and len(ln.baseline) >= 2
    )
    return PageSegmentation(width, height, (), lines)
