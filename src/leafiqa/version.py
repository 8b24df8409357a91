"""The tool's version (kept in step with pyproject.toml) and where a build came from."""

from __future__ import annotations

import subprocess
from pathlib import Path

__version__ = "0.1.0"


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
