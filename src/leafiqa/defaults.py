"""Defaults the command line shows before any config is read (no pydantic, no stage imported:
``leaf score`` starts without them). ``leafiqa.config`` re-exports them."""

from __future__ import annotations

# features depend on the images and the backbone, not on the run: one cache for every run
DEFAULT_CACHE = "runs/cache"
