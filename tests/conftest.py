"""Shared fixtures and markers.

Paths to ../shared (ground truth, schemas; `HTR_SHARED` overrides): every test that needs them asks
for `shared_dir`, `gt_dir` or `schemas_dir` (or a fixture built on them), and is skipped with the
missing path named when they are absent. One Prefect test harness per session.

Real Kraken runs shared by the session (each built on first use, read by several modules):
`kraken_run` (segmentation + recognition of three real pages, tests/test_enrich.py's collection) and
`reread_run` (the lines of three real pages re-read with `segmentation_from="alto"`). Tests that
change a shared run's files work on a copy (`copy_run`).

Markers follow from the fixtures a test asks for (`gt` for ../shared, `kraken` for a shared Kraken
run, `slow` for those and the Prefect harness): see `pytest_collection_modifyitems` and NEEDS. Tests
that run Kraken or servers themselves carry the marks by hand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HTR_SHARED", ROOT.parent / "shared"))
GT = SHARED / "gt"
SCHEMAS = SHARED / "schemas"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# fixture -> the markers a test using it gets (what it needs)
NEEDS = {
    "shared_dir": ("gt",),
    "gt_dir": ("gt",),
    "schemas_dir": ("gt",),
    "portal_gt_out": ("gt",),
    "prefect_harness": ("slow",),  # about 10 s to start, once per session
    "kraken_run": ("gt", "kraken", "slow"),
    "reread_run": ("gt", "kraken", "slow"),
}


def pytest_collection_modifyitems(items):
    """Mark each test with what the fixtures it uses need (`-m "not gt"` then deselects it)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marks in NEEDS.items():
            if fixture in names:
                for mark in marks:
                    if item.get_closest_marker(mark) is None:
                        item.add_marker(mark)


def need(path: Path, what: str) -> Path:
    """Skip the test, saying exactly what is missing, when shared data is absent."""
    if not path.exists():
        pytest.skip(f"{what} missing: expected at {path} (the shared/ folder beside the repository, or $HTR_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return need(SHARED, "shared data folder ../shared")


@pytest.fixture(scope="session")
def gt_dir() -> Path:
    return need(GT, "ground truth ../shared/gt")


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    return need(SCHEMAS, "ALTO/PAGE schemas ../shared/schemas")


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test harness for the whole session (about 9 s to enter), PREFECT_HOME in a temp dir."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def model_or_skip():
    """The shipped recognition model `default`, or skip naming where it was looked for."""
    from htr.errors import ModelError
    from htr.models import models_dir, resolve

    try:
        return resolve("default")
    except ModelError as e:
        pytest.skip(f"no recognition model 'default' in {models_dir()} (set HTR_MODELS_DIR): {e}")


# --------------------------------------------------------------------------- shared real Kraken runs

# (dataset folder under ../shared/gt, image, id the page gets in the collection)
KRAKEN_PAGES = [
    ("cremma-mss-19/lettre-soeur-marie", "01R_P1S3SS2P118_001.jpg", "cremma_01R_P1S3SS2P118_001"),
    ("tapuscorpus/12148-btv1b10581912k", "20_21abf_default.jpg", "tapus_20_21abf_default"),
    ("lectaurep-repertoires/lectaurep-riant-4", "DAFANCH96_048MIC06480_L-0.jpg", "riant_DAFANCH96_048MIC06480_L-0"),
]
KRAKEN_FOLDERS = {
    "cremma-mss-19/lettre-soeur-marie": "cremma",
    "tapuscorpus/12148-btv1b10581912k": "tapus",
    "lectaurep-repertoires/lectaurep-riant-4": "riant",
}
# a handwritten letter of three pages, each with its eScriptorium ALTO (lines re-read, not segmented)
REREAD_FOLDER = "cremma-mss-19/lettre-soeur-marie"
REREAD_SETTINGS = {"workers": 2, "segmentation_from": "alto"}


def make_collection(gt: Path, root: Path) -> Path:
    """Copy the real pages (renamed folders) plus broken and non-image files into root/src."""
    src = root / "src"
    for folder, image, _ in KRAKEN_PAGES:
        dst = src / KRAKEN_FOLDERS[folder]
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(need(gt / folder / image, f"ground-truth image {folder}/{image}"), dst / image)
    data = (gt / KRAKEN_PAGES[0][0] / KRAKEN_PAGES[0][1]).read_bytes()
    (src / "broken").mkdir()
    (src / "broken" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (src / "broken" / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("inventaire sommaire\n")
    return src


def enrich_run(src: Path, out: Path, **settings) -> dict:
    """`enrich_collection` as tests/test_enrich.py runs it: 2 workers, room for the 2 broken pages."""
    from flows.enrich import enrich_collection

    # 2 of the 5 pages are broken on purpose: a max_failures they stay under (the flow ends Failed above it)
    return enrich_collection([str(src)], str(out), {"workers": 2, "max_failures": 0.5, **settings})


@pytest.fixture(scope="session")
def kraken_run(gt_dir, tmp_path_factory, prefect_harness) -> tuple[Path, Path, dict]:
    """(src, OUT, summary): real Kraken segmentation + recognition of 3 real pages from 3 datasets,
    with a truncated JPEG, a zero-byte image and a text file beside them, through the Prefect flow.
    Read-only for its users: copy it (`copy_run`) to run it again."""
    root = tmp_path_factory.mktemp("kraken-run")
    src = make_collection(gt_dir, root)
    out = root / "out"
    return src, out, enrich_run(src, out)


@pytest.fixture(scope="session")
def reread_run(gt_dir, tmp_path_factory, prefect_harness) -> tuple[Path, Path, dict]:
    """(src, OUT, summary): the three pages of a real letter, each with its ground-truth ALTO, whose lines
    the shipped model re-reads (`segmentation_from="alto"`, 2 local workers, entities on). Read-only."""
    from flows.enrich import enrich_collection

    model_or_skip()
    src = tmp_path_factory.mktemp("reread-run") / "export"
    shutil.copytree(need(gt_dir / REREAD_FOLDER, f"ground-truth letter {REREAD_FOLDER}"), src)
    out = src.parent / "out"
    return src, out, enrich_collection([str(src)], str(out), REREAD_SETTINGS)


def copy_run(run: tuple[Path, Path, dict], dest: Path) -> tuple[Path, Path]:
    """A private copy (sources and OUT, same relative layout) of a shared run, to run it again."""
    src, out, _ = run
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest / src.name, symlinks=True)
    shutil.copytree(out, dest / out.name, symlinks=True)
    return dest / src.name, dest / out.name


@pytest.fixture(scope="session")
def portal_gt_out(gt_dir, tmp_path_factory) -> Path:
    """OUT holding one real ground-truth page with its image, run.json and index (tests/portal_sample.py)."""
    from portal_sample import GT_PAGE, gt_output

    need(gt_dir / GT_PAGE, f"ground-truth page {GT_PAGE}")
    return gt_output(gt_dir, tmp_path_factory.mktemp("portal-gt") / "out")


@pytest.fixture(scope="session")
def portal_synthetic_out(tmp_path_factory) -> Path:
    """OUT with generated documents: a folder of PNGs (one split page), a 2-page TIFF, an orphan ALTO."""
    from portal_sample import synthetic_output

    return synthetic_output(tmp_path_factory.mktemp("portal-syn"))
