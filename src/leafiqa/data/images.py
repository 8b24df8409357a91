"""Decoding images into tensors the student reads, and content hashes that key judgments."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from leafiqa.data.manifest import DataError

# Decompression-bomb guard stays on, but at a level real photos never reach.
Image.MAX_IMAGE_PIXELS = 200_000_000

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class ImageDecodeError(DataError):
    """An image file that is missing or cannot be decoded."""


def open_rgb(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from None


def decode_bytes_rgb(data: bytes, label: str = "<upload>") -> Image.Image:
    import io

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{label}: not a decodable image ({error})") from None


def to_model_input(image: Image.Image, size: int) -> np.ndarray:
    """Resize the whole image to size×size and normalise: a CHW float32 array."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def open_rgb_at_least(path: str | Path, side: int) -> Image.Image:
    """``open_rgb``, but a JPEG larger than needed is decoded at a reduced scale (1/2, 1/4 or
    1/8 in the DCT, PIL's ``draft``) that still leaves both sides ≥ ``side`` — several times
    less decoding for large photos; the resize to the model's sizes then starts from there."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            if image.format == "JPEG" and min(image.size) >= 2 * side:
                image.draft("RGB", (side, side))
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from None


def to_pixels(image: Image.Image, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """The whole image resized to each size as uint8 HWC arrays (normalisation is left to the
    network: the fast scoring graphs read uint8 pixels)."""
    return tuple(np.asarray(image if image.size == (s, s) else
                            image.resize((s, s), Image.BILINEAR, reducing_gap=2.0))
                 for s in sizes)


def load_pixels(path: str | Path, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    return to_pixels(open_rgb_at_least(path, max(sizes)), sizes)


def load_model_input(path: str | Path, size: int) -> np.ndarray:
    return to_model_input(open_rgb(path), size)


def as_sizes(size: int | Sequence[int]) -> tuple[int, ...]:
    """One input size or an image pyramid of several, as a tuple of distinct positive sizes."""
    if isinstance(size, (int, np.integer)):
        sizes: tuple[int, ...] = (int(size),)
    elif isinstance(size, (list, tuple)) and all(isinstance(s, (int, np.integer)) for s in size):
        sizes = tuple(int(s) for s in size)
    else:
        raise ValueError(f"expected a size or a list of sizes, got {size!r}")
    if not sizes or any(s < 32 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ValueError(f"expected one size ≥ 32 or a list of distinct ones, got {size!r}")
    return sizes


def to_model_inputs(image: Image.Image, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """The whole image at each pyramid size, each resized from the original (never from a
    smaller level, so fine detail survives at the largest size)."""
    return tuple(to_model_input(image, size) for size in sizes)


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (first 32 hex digits): the same image under another name
    or folder shares its stored judgments."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file not found")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]
