"""Shared fixtures: paths to ../shared (ground truth, schemas), one Prefect test harness per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HTR_SHARED", ROOT.parent / "shared"))
GT = SHARED / "gt"
SCHEMAS = SHARED / "schemas"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def need(path: Path, what: str) -> Path:
    """Skip the test, saying exactly what is missing, when shared data is absent."""
    if not path.exists():
        pytest.skip(f"{what} missing: expected at {path} (the shared/ folder beside the repository)")
    return path


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
