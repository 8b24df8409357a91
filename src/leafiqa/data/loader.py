"""Parallel decode-and-resize of image files into batches (worker processes, in order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from leafiqa.data.images import ImageDecodeError, load_model_input


@dataclass
class Batch:
    indices: list[int]  # positions in the input list of the images decoded in this batch
    pixels: np.ndarray  # (n, 3, size, size) float32
    failures: list[tuple[int, str]]  # (position, reason) of images that could not be decoded


class _Images(Dataset):
    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, load_model_input(self.paths[index], self.size), ""
        except ImageDecodeError as error:
            return index, None, str(error)


def _collate(samples: list[tuple[int, np.ndarray | None, str]]) -> Batch:
    good = [(i, a) for i, a, _ in samples if a is not None]
    failures = [(i, reason) for i, a, reason in samples if a is None]
    size = samples[0][1].shape[-1] if good and samples[0][1] is not None else 0
    pixels = np.stack([a for _, a in good]) if good else np.zeros((0, 3, size, size), np.float32)
    return Batch([i for i, _ in good], pixels, failures)


def default_workers() -> int:
    import os

    return max(1, min(4, (os.cpu_count() or 2)))


def iter_batches(
    paths: Sequence[Path], size: int, batch_size: int = 32, workers: int | None = None
) -> Iterator[Batch]:
    """Batches in input order; an unreadable image is reported in ``failures``, never dropped
    silently and never aborting the run."""
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        _Images(paths, size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        multiprocessing_context="fork" if workers > 0 else None,
    )
    yield from loader
