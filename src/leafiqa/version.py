"""The tool's version and where a build came from. The version has one source: pyproject.toml,
read from the installed distribution's metadata."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "leaf-iqa"


def _source_tree_version() -> str | None:
    """The version pyproject.toml declares, for a source tree run without installing it
    (``PYTHONPATH=src``)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"(?ms)^\[project\]$(.*?)(^\[|\Z)", text)
    found = re.search(r'(?m)^version\s*=\s*"([^"]+)"', project.group(1)) if project else None
    return found.group(1) if found else None


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return _source_tree_version() or "0+unknown"


__version__ = _version()


def git_commit(folder: str | Path | None = None) -> str | None:
    """The commit of the source tree the package runs from (``+dirty`` with local edits);
    None for an installed wheel or where git is absent."""
    folder = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def provenance(**extra: object) -> dict[str, object]:
    """What every model file and results.json records: tool version, git commit, plus the
    caller's labels file and seeds."""
    return {"tool_version": __version__, "git_commit": git_commit(), **extra}
