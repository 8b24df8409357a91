"""Data as people have it: a CSV where only some images have a MOS (the rest are the unlabeled
pool the teacher judges and the student distils from) and no split column (everything trains;
``holdout`` carves a seeded test set out of the labelled images)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from leafiqa.data.manifest import DataError, Manifest, printable
from leafiqa.defaults import DEFAULT_SPLIT

MIN_TEST_IMAGES = 3  # the fewest the correlation metrics accept


def has_split(manifest: Manifest) -> bool:
    return any(item.split for item in manifest)


def training_images(manifest: Manifest) -> Manifest:
    """The train split when the manifest has one, else every image."""
    return manifest.split("train") if has_split(manifest) else manifest


def all_train(manifest: Manifest) -> Manifest:
    """No split column: every image trains (and nothing is held out to evaluate on)."""
    return manifest.subset((replace(item, split="train") for item in manifest), "all-train")


def holdout_split(manifest: Manifest, fraction: float, seed: int = 0) -> Manifest:
    """A seeded ``fraction`` of the images *with MOS* becomes the test set; every other image,
    labelled or not, trains. Only for a manifest without a split column."""
    if not 0 < fraction < 1:
        raise DataError(f"holdout: expected a fraction between 0 and 1, got {fraction}")
    if has_split(manifest):
        raise DataError(f"{manifest.source}: already has a split column; holdout only carves a "
                        "test set where there is none")
    labelled = np.array([i for i, item in enumerate(manifest) if item.mos is not None])
    n_test = int(round(fraction * labelled.size))
    if n_test < MIN_TEST_IMAGES or n_test >= labelled.size:
        raise DataError(f"{manifest.source}: holdout {fraction} of {labelled.size} images with "
                        f"MOS gives {n_test} test images; need at least {MIN_TEST_IMAGES} and "
                        "some left to train on")
    test = set(np.random.default_rng(seed).choice(labelled, size=n_test, replace=False).tolist())
    return manifest.subset(
        (replace(item, split="test" if i in test else "train") for i, item in enumerate(manifest)),
        f"holdout {fraction:g} seed {seed}")


def prepare_splits(manifest: Manifest, holdout: float | None = None, seed: int = 0) -> Manifest:
    """The manifest a run works on: its own split column if it has one, else a holdout test set
    when asked, else everything trains."""
    if holdout:
        return holdout_split(manifest, holdout, seed)
    return manifest if has_split(manifest) else all_train(manifest)


def labelled_rows(mos: Sequence[float] | np.ndarray) -> np.ndarray:
    """Positions of the images that have a MOS (NaN or None marks the unlabeled pool)."""
    values = np.array([np.nan if m is None else m for m in mos], dtype=np.float64)
    return np.flatnonzero(~np.isnan(values))


def write_manifest_csv(manifest: Manifest, path: Path) -> Path:
    """``name,mos,std,split`` with absolute image paths: readable from anywhere by the ``csv``
    reader. Written to a temporary file beside ``path`` and renamed, so a failed write never
    leaves half a data set."""
    import os
    import tempfile

    frame = manifest.to_frame()
    frame["name"] = [printable(item.path.absolute()) for item in manifest]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            frame[["name", "mos", "std", "split"]].to_csv(stream, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_data(kind: str, path: str | Path, *, split: str | None = DEFAULT_SPLIT,
              image_root: str | Path | None = None, holdout: float | None = None,
              holdout_seed: int = 0, limit: int | None = None) -> Manifest:
    """Read a dataset (``kind`` auto: the reader ``data.inputs.detect_kind`` finds) and give it
    the splits a run needs (``prepare_splits``). ``split`` is the split column of the datasets
    that ship several (AGIQA-3K, clive-dev); ``image_root`` is where a CSV's image names
    resolve (default: the CSV's folder)."""
    from leafiqa.data.inputs import resolve_kind
    from leafiqa.data.readers import read_dataset

    kind = resolve_kind(kind, path)
    options: dict[str, object] = {}
    if kind in ("agiqa3k", "clive"):
        options["split"] = split
    if kind == "csv" and image_root:
        options["image_root"] = image_root
    elif image_root:
        raise DataError(f"image_root applies to the csv reader only (kind is '{kind}')")
    manifest = read_dataset(kind, path, **options)
    if limit:
        manifest = manifest.spread(int(limit))
    return prepare_splits(manifest, holdout, holdout_seed)
