"""Frozen-backbone features, computed once per image and stored on disk.

Features run through ONNX Runtime when it is installed (faster than eager PyTorch on a CPU:
docs/results/backbones.md), otherwise through PyTorch. They go to a ``FeatureStore`` per
(backbone, input size) — append-only shards keyed by image content hash
(``student.feature_store``), written every ``shard_rows`` images so a killed extraction
resumes where it stopped — so renamed or moved images are not recomputed. An image pyramid
(several input sizes) concatenates the features of each size, in the order given, reusing each
size's store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from leafiqa.data.images import as_sizes
from leafiqa.data.loader import iter_batches
from leafiqa.data.manifest import DataError, Manifest
from leafiqa.defaults import DEFAULT_BACKBONE, DEFAULT_INPUT_SIZE, default_cache
from leafiqa.student.backbone import build_backbone, cache_id, feature_blocks, network_blocks
from leafiqa.student.feature_store import FeatureStore
from leafiqa.student.onnx_runtime import export_onnx, onnx_available, onnx_session
from leafiqa.student.ridge import CHUNK_ROWS, FeatureSource

log = logging.getLogger(__name__)



def set_cpu_threads(threads: int | None = None) -> int:
    import os

    threads = threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


class FeatureExtractor:
    """Multi-level features of a frozen backbone at one input size, or concatenated over the
    sizes of an image pyramid."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
        cache_dir: str | Path | None = None,
        runtime: str = "auto",
        batch_size: int = 16,
        workers: int | None = None,
        network: torch.nn.Module | None = None,
    ) -> None:
        """``network``: this backbone instead of building ``backbone`` (a model file's; its
        recorded spec keys the cache)."""
        self.sizes = as_sizes(input_size)
        self.network = network
        self.levels = [SingleSizeFeatures(backbone, size, cache_dir, runtime, batch_size, workers,
                                          network)
                       for size in self.sizes]

    @property
    def tag(self) -> str:
        return "+".join(level.tag for level in self.levels)

    @property
    def blocks(self) -> tuple[int, ...]:
        """The sizes of the feature blocks (``backbone.feature_blocks``), for the scaler."""
        if self.network is not None:
            return network_blocks(self.network, len(self.sizes))
        return feature_blocks(self.levels[0].backbone_name, len(self.sizes))

    def transform(
        self, manifest: Manifest, keys: Sequence[str], progress: bool = True
    ) -> np.ndarray:
        """(len(manifest), D) features in manifest order; computes only what the caches lack."""
        return np.concatenate([level.transform(manifest, keys, progress)
                               for level in self.levels], axis=1)

    def fill(self, manifest: Manifest, keys: Sequence[str], progress: bool = True) -> None:
        """Compute what the stores lack, returning nothing (``source`` then reads the features
        chunk by chunk): a pool of any size without its matrix in memory."""
        for level in self.levels:
            level.fill(manifest, keys, progress)

    def source(self, keys: Sequence[str], chunk_rows: int = CHUNK_ROWS) -> FeatureSource:
        """The stored features of ``keys`` (computed by ``transform`` or ``features --engine
        ray``) as a chunked source: a pool of any size in bounded memory."""
        sources = [level.store.source(keys, chunk_rows) for level in self.levels]
        width = sum(s.n_features for s in sources)
        return FeatureSource(len(keys), width, lambda a, b: np.concatenate(
            [s.read(a, b) for s in sources], axis=1), chunk_rows)


class SingleSizeFeatures:
    """Multi-level features of a frozen backbone at one input size, cached."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        input_size: int = 384,
        cache_dir: str | Path | None = None,
        runtime: str = "auto",
        batch_size: int = 16,
        workers: int | None = None,
        network: torch.nn.Module | None = None,
        shard_rows: int = 512,
    ) -> None:
        self.backbone_name = backbone
        self.input_size = input_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self.workers = workers
        self.shard_rows = shard_rows
        self._store: FeatureStore | None = None
        if runtime == "auto":
            runtime = "onnx" if onnx_available() else "torch"
        if network is not None and self.cache_dir is None:
            runtime = "torch"  # an ONNX copy of a given network would need a key of its own
        self.runtime = runtime
        self._network: torch.nn.Module | None = network
        spec = getattr(network, "spec", None)
        self._cache_id = spec.cache_id if spec is not None else None
        self._session: Any = None  # an onnxruntime session, made on first use

    @property
    def network(self) -> torch.nn.Module:
        if self._network is None:
            self._network = build_backbone(self.backbone_name).eval()
        return self._network

    @property
    def tag(self) -> str:
        # the backbone's id and revision (an HF model's hub commit or weights hash)
        return f"{self._cache_id or cache_id(self.backbone_name)}-{self.input_size}-ml1"

    def _cache_file(self) -> Path | None:
        """The old single-file cache (read and migrated into the store)."""
        return self.cache_dir / f"features-{self.tag}.npz" if self.cache_dir else None

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            directory = self.cache_dir / f"features-{self.tag}" if self.cache_dir else None
            self._store = FeatureStore(directory, self._cache_file())
        return self._store

    def onnx_graph(self) -> Path:
        """The backbone's ONNX graph at this input size (exported once into the cache)."""
        onnx_path = (self.cache_dir or default_cache()) / f"backbone-{self.tag}.onnx"
        if not onnx_path.is_file():
            export_onnx(self.network, self.input_size, onnx_path)
        return onnx_path

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        if self.runtime == "onnx":
            if self._session is None:
                self._session = onnx_session(self.onnx_graph())
            return self._session.run(None, {"images": pixels})[0]
        with torch.inference_mode():
            return self.network(torch.from_numpy(pixels)).numpy()

    def transform(
        self, manifest: Manifest, keys: Sequence[str], progress: bool = True
    ) -> np.ndarray:
        """(len(manifest), D) features in manifest order; computes only what the store lacks
        (``fill``)."""
        self.fill(manifest, keys, progress)
        return self.store.get(keys)

    def fill(self, manifest: Manifest, keys: Sequence[str], progress: bool = True) -> None:
        """Compute the features the store lacks, appending a shard every ``shard_rows``
        images (a kill loses at most one shard)."""
        store = self.store
        todo = [i for i, key in enumerate(keys) if key not in store]
        todo = list({keys[i]: i for i in todo}.values())
        if todo:
            paths = [manifest[i].path for i in todo]
            failures: list[str] = []
            pending_keys: list[str] = []
            pending_rows: list[np.ndarray] = []
            with tqdm(total=len(todo), desc=f"features · {self.tag}", unit="img",
                      disable=not progress) as bar:
                for batch in iter_batches(paths, self.input_size, self.batch_size, self.workers):
                    failures.extend(reason for _, reason in batch.failures)
                    if batch.indices:
                        output = self._forward(batch.pixels).astype(np.float32)
                        pending_keys += [keys[todo[position]] for position in batch.indices]
                        pending_rows.append(output)
                    bar.update(len(batch.indices) + len(batch.failures))
                    if len(pending_keys) >= self.shard_rows:
                        store.append(pending_keys, np.concatenate(pending_rows))
                        pending_keys, pending_rows = [], []
            if pending_keys:
                store.append(pending_keys, np.concatenate(pending_rows))
            if failures:
                raise DataError(
                    f"{len(failures)} image(s) could not be decoded: " + "; ".join(failures[:5])
                )
