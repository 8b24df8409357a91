"""Hostile inputs made on the fly (nothing downloaded): decompression bombs, 16-bit and
EXIF-rotated images, corrupt stores."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path | None = None, side: int = 30_000, rows: int = 64) -> bytes:
    """A small PNG whose header declares ``side``×``side`` greyscale pixels (900 MP by
    default); only the first ``rows`` rows are present, as zeros compressed to a few KB."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * ((side + 1) * rows), 9)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", raw)
            + _chunk(b"IEND", b""))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def photo(seed: int = 0, width: int = 120, height: int = 80) -> np.ndarray:
    """A smooth, non-symmetric RGB uint8 image (so rotations are visible)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + 2 * y) / (width + 2 * height)], -1) * 200
    noise = rng.normal(0, 8, size=(height, width, 3))
    return np.clip(base + noise + 20, 0, 255).astype(np.uint8)


def save_png16_grey(path: Path, grey8: np.ndarray) -> Path:
    """``grey8`` (uint8) stored as a 16-bit greyscale PNG with the same look."""
    Image.fromarray(grey8.astype(np.uint16) * 257).save(path)
    return path


def save_exif_rotated(path: Path, upright: np.ndarray) -> Path:
    """The upright picture stored as a camera does: pixels turned 90° with EXIF orientation 6
    (rotate 90° clockwise to view)."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=98, exif=exif.tobytes())
    return path
