"""Defaults the command line shows before any config is read (no pydantic, no stage imported:
``leaf score`` starts without them). ``leafiqa.config`` re-exports them."""

from __future__ import annotations

import os
from pathlib import Path

# The feature cache (features depend on the images and the backbone, not on the run: one cache
# for every run). A config's `cache:` or a command's --cache names another folder.
CACHE_ENV = "LEAF_CACHE"
CACHE_HELP = "feature cache folder (default: $LEAF_CACHE, else the user's cache folder)"


def default_cache() -> Path:
    """The cache folder when none is named: ``$LEAF_CACHE``, else the user's cache directory
    (``platformdirs.user_cache_dir("leaf-iqa")``: ``~/.cache/leaf-iqa`` on Linux). Read at
    each call, so a test or a caller may set ``LEAF_CACHE`` after importing LEAF."""
    named = os.environ.get(CACHE_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("leaf-iqa"))


def cache_folder(cache: str | Path | None = None) -> Path:
    """``cache`` when one is named, else ``default_cache()``."""
    return Path(cache).expanduser() if cache else default_cache()
