"""The feature store: frozen features on disk as append-only shards of memory-mapped NumPy arrays.

One folder per (backbone, input size) — ``features-<tag>/`` in the cache folder — holding
shards that are each a pair of files: ``shard-<id>.npy`` (float32 rows, NumPy's own ``.npy``
format) and ``shard-<id>.keys`` (the images' content hashes, one a line, in row order). A shard
is written once, to temporary names then renamed, features first and keys last, so it exists
only once whole: a run killed mid-extraction loses at most the shard it was filling, and the
rerun computes only the images no shard holds. Content hashes are the keys, so an image is
stored once however many files or runs carry it (dedup), and renamed or moved images are not
recomputed. Shard ids carry the time and process id, so runs sharing a cache folder never
collide; a key written twice is read from its first shard.

Why ``.npy`` shards rather than Parquet/Arrow or Zarr: rows are fixed-width float32 vectors
read whole, never filtered by column, so a memory map reads exactly the rows asked for with no
decoding and no new dependency; appending is a new file (no rewrite of what exists), which is
what makes resuming trivial and the bytes written over a run linear in the pool (the old cache
rewrote one ``.npz`` of everything every 50 batches: quadratic). Reading goes shard by shard
through memory maps, so memory stays bounded whatever the pool size (``FeatureStore.source``).

The previous cache format (``features-<tag>.npz``: ``keys`` and ``features`` arrays) is read
and migrated once into a shard, the ``.npz`` left in place; the migration is redone (adding
only the keys the store lacks) if the ``.npz`` changes afterwards, e.g. while an older LEAF
still fills it."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leafiqa.errors import DataError
from leafiqa.student.ridge import CHUNK_ROWS, FeatureSource

MIGRATED = "migrated.json"
log = logging.getLogger(__name__)


class FeatureStore:
    """Features by content hash, in append-only ``.npy`` shards under ``directory`` (None:
    kept in memory only, for a run without a cache folder)."""

    def __init__(self, directory: str | Path | None, legacy_npz: str | Path | None = None
                 ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._index: dict[str, tuple[int, int]] = {}  # key → (shard number, row)
        self._shards: list[Path | np.ndarray] = []  # a shard's .npy path, or its rows in memory
        self._maps: dict[int, np.ndarray] = {}
        if self.directory is not None:
            self._scan()
            if legacy_npz is not None:
                self.migrate_npz(Path(legacy_npz))

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_features(self) -> int | None:
        if not self._shards:
            return None
        return int(self._rows(0).shape[1])

    def _scan(self) -> None:
        assert self.directory is not None
        if not self.directory.is_dir():
            return
        for keys_file in sorted(self.directory.glob("shard-*.keys")):
            array_file = keys_file.with_suffix(".npy")
            if not array_file.is_file():
                continue  # cannot happen for a shard written here (features are renamed first)
            self._add(array_file, keys_file.read_text().split())

    def _add(self, shard: Path | np.ndarray, keys: Sequence[str]) -> None:
        number = len(self._shards)
        self._shards.append(shard)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (number, row))

    def _rows(self, number: int) -> np.ndarray:
        shard = self._shards[number]
        if isinstance(shard, np.ndarray):
            return shard
        if number not in self._maps:
            self._maps[number] = np.load(shard, mmap_mode="r")
        return self._maps[number]

    def append(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """Store ``rows`` (one per key) as a new shard; keys already stored are skipped."""
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in self._index:
                first.setdefault(key, i)
        fresh = list(first.values())
        if not fresh:
            return
        new_keys = [keys[i] for i in fresh]
        block = np.ascontiguousarray(np.asarray(rows, dtype=np.float32)[fresh])
        width = self.n_features
        if width is not None and block.shape[1] != width:
            raise DataError(f"{self.directory}: stored features have {width} columns, "
                            f"new ones {block.shape[1]}")
        if self.directory is None:
            self._add(block, new_keys)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self.directory / f"shard-{time.time_ns():020d}-{os.getpid()}"
        array_file, keys_file = stem.with_suffix(".npy"), stem.with_suffix(".keys")
        temporary = stem.with_suffix(".npy.tmp")
        with temporary.open("wb") as handle:
            np.save(handle, block)
        os.replace(temporary, array_file)
        temporary = stem.with_suffix(".keys.tmp")
        temporary.write_text("\n".join(new_keys) + "\n")
        os.replace(temporary, keys_file)  # the shard exists from here on
        self._add(array_file, new_keys)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), D) float32 features of ``keys`` (all must be stored), read shard by shard."""
        missing = [key for key in keys if key not in self._index]
        if missing:
            raise KeyError(f"{len(missing)} image(s) not in the feature store, e.g. {missing[0]}")
        out = np.empty((len(keys), self.n_features or 0), dtype=np.float32)
        where = np.array([self._index[key] for key in keys], dtype=np.int64).reshape(-1, 2)
        for number in np.unique(where[:, 0]):
            positions = np.flatnonzero(where[:, 0] == number)
            rows = where[positions, 1]
            order = np.argsort(rows)  # a memory map reads forward
            out[positions[order]] = self._rows(int(number))[rows[order]]
        return out

    def source(self, keys: Sequence[str], chunk_rows: int = CHUNK_ROWS) -> FeatureSource:
        """``keys``' features as a chunked source (``ridge.FeatureSource``): only one chunk is
        ever in memory, whatever the number of keys."""
        keys = list(keys)
        width = self.n_features or 0
        return FeatureSource(len(keys), width, lambda a, b: self.get(keys[a:b]), chunk_rows)

    def migrate_npz(self, path: Path) -> int:
        """Import the keys of an old-format ``.npz`` cache that the store lacks (once per
        version of that file; it is left in place). Returns how many were added."""
        if self.directory is None or not path.is_file():
            return 0
        record_file = self.directory / MIGRATED
        records = json.loads(record_file.read_text()) if record_file.is_file() else {}
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        if records.get(path.name) == stamp:
            return 0
        try:
            with np.load(path) as data:
                keys = [str(k) for k in data["keys"].tolist()]
                wanted = [i for i, key in enumerate(keys) if key not in self._index]
                rows = data["features"][wanted] if wanted else None
        except (OSError, ValueError, KeyError, EOFError) as error:
            # not a cache LEAF wrote (or a damaged one): its images are simply recomputed
            log.warning("%s: old feature cache not migrated (%s)", path, error)
            return 0
        before = len(self)
        if rows is not None:
            self.append([keys[i] for i in wanted], rows)
        self.directory.mkdir(parents=True, exist_ok=True)
        records[path.name] = stamp
        temporary = record_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(records))
        os.replace(temporary, record_file)
        return len(self) - before
