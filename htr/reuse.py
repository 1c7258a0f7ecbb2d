"""Re-recognition of existing segmentations: lines and reading order from ALTO/PAGE (e.g. an eScriptorium export).

Only the text is read again; line ids and geometry are kept.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from alto.gt import find_gt_files, read_gt
from htr.errors import InputError
from htr.images import page_id_for
from htr.types import Line, PageRef, PageSegmentation


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
            except Exception as e:  # noqa: BLE001 - reported, the rest goes on
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
                    _sha256(image),
                    1,
                    segmentation=str(xml),
                    segmentation_sha256=_sha256(xml),
                )
            )
    return refs, ignored


def segmentation_of(ref: PageRef, width: int, height: int) -> PageSegmentation:
    """The lines of `ref.segmentation` in its reading order (alto.reader), ids and geometry kept
    (lines without polygon dropped)."""
    try:
        gt = read_gt(ref.segmentation)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read segmentation: {e}", path=ref.segmentation, page_id=ref.id) from e
    if (gt.width, gt.height) != (width, height):
        raise InputError(
            f"segmentation is for a {gt.width}x{gt.height} image but {ref.source} is {width}x{height}",
            path=ref.segmentation,
            page_id=ref.id,
        )
    clamp = lambda pts: tuple((min(max(x, 0), width - 1), min(max(y, 0), height - 1)) for x, y in pts)  # noqa: E731
    lines = tuple(
        Line(ln.id, clamp(ln.baseline), clamp(ln.polygon), ln.region_id)
        for ln in gt.lines
        if len(ln.polygon) >= 3 and len(ln.baseline) >= 2
    )
    return PageSegmentation(width, height, (), lines)
