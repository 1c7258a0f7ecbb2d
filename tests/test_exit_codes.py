"""`htr`'s exit codes (core/errors.py, README "Exit codes"): each error class carries its own, `cli.main` returns it."""

from __future__ import annotations

import pytest

from htr import errors as E


@pytest.mark.parametrize(
    "cls, code",
    [
        (E.HTRError, 2),
        (E.ConfigError, 2),
        (E.InputError, 3),
        (E.XmlError, 3),
        (E.AltoError, 3),
        (E.ModelError, 4),
        (E.DeviceError, 4),
        (E.OutputError, 5),
        (E.DiskFull, 5),
        (E.RunLocked, 5),
        (E.RunFailed, 1),
    ],
)
def test_each_error_says_its_exit_code(cls, code):
    assert cls("why", path="f").exit_code == code


def test_cli_returns_the_errors_exit_code(tmp_path, capsys):
    from cli.main import main

    assert main(["enrich", str(tmp_path / "absent"), "-o", str(tmp_path / "out")]) == E.EXIT_INPUT
    assert capsys.readouterr().err.strip().endswith("absent: no such file or folder")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert main(["enrich", str(tmp_path), "-o", str(a_file)]) == E.EXIT_OUTPUT
    assert "output is not a folder" in capsys.readouterr().err
