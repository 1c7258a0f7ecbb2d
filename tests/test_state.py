"""Resume keys, resume markers, settings strictness and the model registry (no Kraken run)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from alto.writer import build_alto, write_alto
from htr import atomic, state
from htr.config import make_settings
from htr.errors import ConfigError, ModelError
from htr.models import resolve
from htr.types import Line, LineText, PageImage, PageRef, PageResult, PageSegmentation, PageText, Word

REF = PageRef("p1", "/data/p1.jpg", 0, "a" * 64)
HASHES = {"segmentation": "s" * 64, "recognition": "r" * 64}


def test_key_changes_with_image_model_settings_and_index():
    base = make_settings()
    k = state.page_key(REF, HASHES, base)
    assert k == state.page_key(REF, dict(HASHES), make_settings())  # stable
    assert k != state.page_key(replace(REF, sha256="b" * 64), HASHES, base)
    assert k != state.page_key(replace(REF, index=1), HASHES, base)
    assert k != state.page_key(REF, {**HASHES, "recognition": "x" * 64}, base)
    assert k != state.page_key(REF, {**HASHES, "segmentation": "x" * 64}, base)
    assert k != state.page_key(REF, HASHES, make_settings(load={"pdf_dpi": 200}))
    assert k != state.page_key(REF, HASHES, make_settings(recognize={"model": "other"}))


def test_key_ignores_settings_that_do_not_change_outputs():
    k = state.page_key(REF, HASHES, make_settings())
    assert k == state.page_key(REF, HASHES, make_settings(workers=7, max_failures=0.5, force=True))
    assert k == state.page_key(REF, HASHES, make_settings(recognize={"batch_size": 8}))


def test_settings_are_strict():
    with pytest.raises(ConfigError, match="segment.modle"):
        make_settings(segment={"modle": "x"})
    with pytest.raises(ConfigError, match="max_failures"):
        make_settings(max_failures=2)
    with pytest.raises(ConfigError, match="device"):
        make_settings(device="tpu")


def _write_page(out: Path, key: str) -> None:
    page = PageImage(REF, "/data/p1.jpg", 100, 50)
    seg = PageSegmentation(100, 50, (), (Line("l1", ((5, 30), (90, 30)), ((5, 10), (90, 10), (90, 35), (5, 35))),))
    text = PageText((LineText("l1", "Paris", 0.9, (Word("Paris", (5, 10, 40, 35), 0.9),)),))
    write_alto(state.alto_path(out, REF.id), build_alto(page, seg, text, ()))
    atomic.write_text(state.text_path(out, REF.id), "Paris\n")
    state.write_marker(out, PageResult(REF.id, REF.source, 0, REF.sha256, "done", key=key))


def test_is_done_needs_same_key_and_valid_complete_outputs(tmp_path):
    _write_page(tmp_path, "k1")
    assert state.is_done(tmp_path, REF.id, "k1") is not None
    assert state.is_done(tmp_path, REF.id, "k2") is None  # other model/settings/image
    state.text_path(tmp_path, REF.id).unlink()
    assert state.is_done(tmp_path, REF.id, "k1") is None  # incomplete outputs
    _write_page(tmp_path, "k1")
    state.alto_path(tmp_path, REF.id).write_text("<alto>broken")
    assert state.is_done(tmp_path, REF.id, "k1") is None  # invalid ALTO
    _write_page(tmp_path, "k1")
    state.write_marker(tmp_path, PageResult(REF.id, REF.source, 0, REF.sha256, "failed", key="k1", error="x"))
    assert state.is_done(tmp_path, REF.id, "k1") is None  # failed pages are retried


def test_sweep_removes_temp_files_of_a_killed_run(tmp_path):
    (tmp_path / "alto").mkdir()
    (tmp_path / "alto" / f".p1.xml{atomic.TMP_MARK}abc").write_text("<half")
    (tmp_path / "alto" / "p1.xml").write_text("<alto/>")
    assert atomic.sweep(tmp_path) == 1
    assert [p.name for p in (tmp_path / "alto").iterdir()] == ["p1.xml"]


def test_model_registry_verifies_sha256(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"weights")
    import hashlib

    sha = hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "manifest.json").write_text(
        json.dumps({"models": {"default": {"file": "m.safetensors", "sha256": sha}}})
    )
    info = resolve("default", tmp_path)
    assert (info.name, info.sha256, Path(info.path).name) == ("default", sha, "m.safetensors")
    assert resolve(str(tmp_path / "m.safetensors"), tmp_path).sha256 == sha
    (tmp_path / "m.safetensors").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        resolve("default", tmp_path)
    with pytest.raises(ModelError, match="known: default"):
        resolve("nope", tmp_path)


def test_atomic_files_are_world_readable_and_keep_their_mode(tmp_path):
    """mkstemp makes 0600 files: outputs must stay readable by a portal's web server."""
    p = tmp_path / "run.json"
    atomic.write_text(p, "{}")
    assert p.stat().st_mode & 0o777 == 0o644
    p.chmod(0o640)
    atomic.write_text(p, "{}")
    assert p.stat().st_mode & 0o777 == 0o640
