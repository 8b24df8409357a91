"""Stage 1 — data: image manifests, dataset readers, image decoding and hashing.

The names below are imported on first use, so ``leafiqa.data.images`` (what scoring needs)
loads without pandas and the readers."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ImageDecodeError": "leafiqa.data.images",
    "content_hash": "leafiqa.data.images",
    "load_model_input": "leafiqa.data.images",
    "open_rgb": "leafiqa.data.images",
    "DataError": "leafiqa.data.manifest",
    "ImageItem": "leafiqa.data.manifest",
    "Manifest": "leafiqa.data.manifest",
    **{name: "leafiqa.data.readers" for name in (
        "READERS", "read_agiqa3k", "read_dataset", "read_folder", "read_kadid10k",
        "read_koniq10k", "read_live_challenge", "read_plain_csv", "read_spaq")},
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leafiqa.data' has no attribute {name!r}")

__all__ = [
    "READERS",
    "DataError",
    "ImageDecodeError",
    "ImageItem",
    "Manifest",
    "content_hash",
    "load_model_input",
    "open_rgb",
    "read_agiqa3k",
    "read_dataset",
    "read_folder",
    "read_kadid10k",
    "read_koniq10k",
    "read_live_challenge",
    "read_plain_csv",
    "read_spaq",
]
