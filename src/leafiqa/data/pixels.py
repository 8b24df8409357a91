"""Threaded decode-and-resize of image files into uint8 pixel batches, without PyTorch (the
fast ONNX scoring path and Ray's scoring actors import only this, NumPy, PIL and ONNX Runtime).

The one path from an input to the pixels a model reads (``input_pixels``): files and bytes
decoded for the model's sizes (``data.images.decode_side``: a large JPEG at a reduced DCT scale),
other in-memory inputs converted by ``image_from_any``, all resized by ``to_pixels``."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leafiqa.data.images import as_sizes, decode_side, image_from_any, to_pixels
from leafiqa.errors import DataError

Levels = tuple[np.ndarray, ...]


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2)))


@dataclass
class PixelBatch:
    indices: list[int]  # positions in the input list of the images decoded in this batch
    pixels: Levels  # one (n, size, size, 3) uint8 array per pyramid size
    failures: list[tuple[int, str]]


def input_pixels(item: Any, sizes: Sequence[int], label: str = "<image>",
                 max_pixels: int | None = None) -> Levels:
    """Any input (a file path, bytes, PIL image, array, tensor) as the uint8 levels a model
    reads (``image_from_any``; files and bytes decoded for ``sizes``: ``decode_side``)."""
    return to_pixels(image_from_any(item, label, max_pixels, decode_side(sizes)), sizes)


def _decode(item: Any, sizes: tuple[int, ...], label: str) -> Levels | str:
    try:
        return input_pixels(item, sizes, label)
    except DataError as error:  # ImageDecodeError, or an in-memory input that is no image
        return str(error)


def iter_pixel_batches(
    paths: Sequence[Any], size: int | Sequence[int], batch_size: int = 32,
    threads: int | None = None, prefetch: int = 2,
) -> Iterator[PixelBatch]:
    """Batches of uint8 pixels in input order, decoded by a thread pool (PIL releases the GIL
    while decoding and resizing) that runs ``prefetch`` batches ahead of the consumer, so
    decoding overlaps inference without copying pixels between processes. ``paths`` are files,
    or any input ``image_from_any`` takes. Unreadable images are reported in ``failures``."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = as_sizes(size)
    threads = threads or default_workers()
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="leaf-decode") as pool:
        pending: deque[tuple[int, list]] = deque()
        for start in starts:
            pending.append((start, [pool.submit(_decode, item, sizes, f"images[{start + k}]")
                                    for k, item in enumerate(paths[start : start + batch_size])]))
            if len(pending) <= prefetch:
                continue
            yield _collect(*pending.popleft(), sizes)
        while pending:
            yield _collect(*pending.popleft(), sizes)


def _collect(start: int, futures: list, sizes: tuple[int, ...]) -> PixelBatch:
    good: list[tuple[int, Levels]] = []
    failures: list[tuple[int, str]] = []
    for offset, future in enumerate(futures):
        result = future.result()
        if isinstance(result, str):
            failures.append((start + offset, result))
        else:
            good.append((start + offset, result))
    pixels = tuple(np.stack([levels[k] for _, levels in good]) if good
                   else np.zeros((0, s, s, 3), np.uint8) for k, s in enumerate(sizes))
    return PixelBatch([i for i, _ in good], pixels, failures)
