"""Parallel decode-and-resize of image files into batches (worker processes, in order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from leafiqa.data.images import ImageDecodeError, as_sizes, load_model_inputs
from leafiqa.data.pixels import Levels, default_workers


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
            return index, load_model_inputs(self.paths[index], self.sizes), ""
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
