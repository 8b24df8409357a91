"""Stage 1 — data: image manifests, dataset readers, image decoding and hashing."""

from leafiqa.data.images import ImageDecodeError, content_hash, load_model_input, open_rgb
from leafiqa.data.manifest import DataError, ImageItem, Manifest
from leafiqa.data.readers import (
    READERS,
    read_agiqa3k,
    read_dataset,
    read_folder,
    read_kadid10k,
    read_koniq10k,
    read_live_challenge,
    read_plain_csv,
    read_spaq,
)

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
