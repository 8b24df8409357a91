"""One version source: pyproject.toml, read from the installed distribution's metadata (or,
in a source tree that is not installed, from pyproject.toml itself)."""

from __future__ import annotations

from importlib import metadata

import pytest

import leafiqa
from leafiqa import version
from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
DECLARED = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_version_is_the_one_pyproject_declares() -> None:
    assert "version" not in DECLARED.get("dynamic", [])
    assert leafiqa.__version__ == metadata.version("leaf-iqa") == DECLARED["version"]


def test_a_source_tree_that_is_not_installed_reads_pyproject(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version.metadata, "version", not_installed)
    assert version._version() == DECLARED["version"]
    monkeypatch.setattr(version, "_source_tree_version", lambda: None)
    assert version._version() == "0+unknown"
