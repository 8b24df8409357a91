"""Defaults written once, for the command line, the config and the stages: the judgment store,
the split, the dataset kinds, the feature cache, and the help that names them. Nothing is
imported here (no pydantic, no stage: ``leaf score`` starts without them)."""

from __future__ import annotations

import os
from pathlib import Path

#: the judgment store a command reads and writes when none is named
DEFAULT_STORE = Path("runs/judgments.sqlite")
STORE_HELP = "SQLite judgment store"

#: the split column read from the data sets that ship several (AGIQA-3K, clive-dev)
DEFAULT_SPLIT = "split_1"
SPLIT_HELP = "split column of AGIQA-3K and clive-dev (split_1 … split_5)"

#: the dataset readers (``data.readers.READERS``); ``auto`` tells them apart by their files
#: (``data.inputs.detect_kind``)
DATASET_KINDS = ("agiqa3k", "clive", "koniq10k", "spaq", "livec", "kadid10k", "csv", "folder")
KIND_HELP = "the data set's reader (auto: told by the files it holds)"

#: the student's image backbone when none is named
DEFAULT_BACKBONE = "efficientnet-lite0"
#: the student reads an image pyramid: the whole image at 224 px (global composition) and at
#: 512 px (fine detail, artefacts), at the cost of scoring both sizes; one view in between
#: sees neither as well (``make table-variants`` runs benchmarks/student_variants.py, which
#: measures the alternatives).
DEFAULT_INPUT_SIZE: tuple[int, ...] = (224, 512)

#: where a step runs: here, or on a Ray cluster (``leafiqa.distributed``)
ENGINES = ("local", "ray")

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
