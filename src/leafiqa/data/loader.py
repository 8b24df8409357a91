"""Parallel decode-and-resize of image files into batches (worker processes, in order)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from leafiqa.data.images import (
    ImageDecodeError,
    as_sizes,
    load_pixels,
    open_rgb,
    to_model_inputs,
)

Levels = tuple[np.ndarray, ...]


@dataclass
class Batch:
    indices: list[int]  # positions in the input list of the images decoded in this batch
    levels: Levels  # one (n, 3, size, size) float32 array per pyramid size
    failures: list[tuple[int, str]]  # (position, reason) of images that could not be decoded

    @property
    def pixels(self) -> np.ndarray:
        """The first (for a single-size model: the only) level."""
        return self.levels[0]


def stack_levels(per_image: Sequence[Levels], sizes: Sequence[int]) -> Levels:
    """Images given as one array per size → one (n, 3, size, size) batch per size."""
    return tuple(np.stack([levels[k] for levels in per_image]) if per_image
                 else np.zeros((0, 3, size, size), np.float32)
                 for k, size in enumerate(sizes))


class _Images(Dataset):
    def __init__(self, paths: Sequence[Path], sizes: tuple[int, ...]) -> None:
        self.paths = list(paths)
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Levels | None, str]:
        try:
            return index, to_model_inputs(open_rgb(self.paths[index]), self.sizes), ""
        except ImageDecodeError as error:
            return index, None, str(error)


class _Collate:
    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = sizes

    def __call__(self, samples: list[tuple[int, Levels | None, str]]) -> Batch:
        good = [(i, levels) for i, levels, _ in samples if levels is not None]
        failures = [(i, reason) for i, levels, reason in samples if levels is None]
        stacked = stack_levels([levels for _, levels in good], self.sizes)
        return Batch([i for i, _ in good], stacked, failures)


def default_workers() -> int:
    import os

    return max(1, min(4, (os.cpu_count() or 2)))


def iter_batches(
    paths: Sequence[Path], size: int | Sequence[int], batch_size: int = 32,
    workers: int | None = None,
) -> Iterator[Batch]:
    """Batches in input order, each image decoded once and resized to every size asked; an
    unreadable image is reported in ``failures``, never dropped silently and never aborting
    the run."""
    workers = default_workers() if workers is None else workers
    sizes = as_sizes(size)
    loader = DataLoader(
        _Images(paths, sizes),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_Collate(sizes),
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        multiprocessing_context="fork" if workers > 0 else None,
    )
    yield from loader


@dataclass
class PixelBatch:
    indices: list[int]  # positions in the input list of the images decoded in this batch
    pixels: Levels  # one (n, size, size, 3) uint8 array per pyramid size
    failures: list[tuple[int, str]]


def _decode(path: Path, sizes: tuple[int, ...]) -> Levels | str:
    try:
        return load_pixels(path, sizes)
    except ImageDecodeError as error:
        return str(error)


def iter_pixel_batches(
    paths: Sequence[Path], size: int | Sequence[int], batch_size: int = 32,
    threads: int | None = None, prefetch: int = 2,
) -> Iterator[PixelBatch]:
    """Batches of uint8 pixels in input order, decoded by a thread pool (PIL releases the GIL
    while decoding and resizing) that runs ``prefetch`` batches ahead of the consumer, so
    decoding overlaps inference without copying pixels between processes. Unreadable images
    are reported in ``failures``."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = as_sizes(size)
    threads = threads or default_workers()
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="leaf-decode") as pool:
        pending: deque = deque()
        for start in starts:
            pending.append((start, [pool.submit(_decode, Path(p), sizes)
                                    for p in paths[start : start + batch_size]]))
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
