"""Only LEAF's own errors (and a missing or unreadable file) become one `error:` line with exit
code 2; anything else — a ValueError from a bug included — keeps its traceback (exit code 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import leafiqa.config
from leafiqa.cli import app
from leafiqa.cli.base import USER_ERRORS
from leafiqa.errors import ConfigError, DataError, LeafError
from tests.conftest import REPO

runner = CliRunner()
CONFIG = REPO / "configs" / "demo.yaml"


def test_a_plain_value_error_is_not_a_user_error() -> None:
    assert not any(issubclass(ValueError, kind) for kind in USER_ERRORS)
    assert issubclass(ConfigError, USER_ERRORS) and issubclass(DataError, USER_ERRORS)
    # LEAF's errors for bad values are still ValueErrors for callers that catch those
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)


def test_a_bugs_value_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr(leafiqa.config, "load_config", broken)
    result = runner.invoke(app, ["config", str(CONFIG)])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    assert not isinstance(result.exception, LeafError)
    assert "error:" not in result.output


def test_a_bugs_value_error_prints_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    script = ("import leafiqa.config, leafiqa.cli\n"
              "def broken(*a, **k):\n"
              "    raise ValueError('a bug, not the user')\n"
              "leafiqa.config.load_config = broken\n"
              f"leafiqa.cli.app(['config', {str(CONFIG)!r}])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: a bug, not the user" in result.stderr
    assert "error:" not in result.stderr


def test_a_user_error_stays_one_line(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["config", str(CONFIG), "--set", "student.input_size=7"])
    assert bad.exit_code == 2
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "input_size" in lines[0]
    missing = runner.invoke(app, ["config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and missing.output.startswith("error: ")
    unknown = runner.invoke(app, ["select", "--data", str(tmp_path), "--n", "3", "--selection",
                                  "bogus"])
    assert unknown.exit_code == 2, unknown.output
    assert unknown.output.strip().splitlines() == [
        "error: --selection: 'bogus' is not one of 'random', 'spread', 'kcenter', 'variance'."]
    missing_value = runner.invoke(app, ["select", "--data", str(tmp_path)])
    assert missing_value.exit_code == 2
    assert missing_value.output.strip().splitlines() == ["error: Missing option '--n'."]
