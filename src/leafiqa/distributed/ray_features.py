"""``leaf features --engine ray``: frozen-backbone features in a Ray Data actor pool.

The same map over images as ``leaf score --engine ray`` (``ray_score``): the driver exports the
backbone's ONNX graph at each input size once and ships it to the actors as bytes (workers on
other machines need no model file and no PyTorch for inference); each actor decodes its block
of images with the same loader as the local path and runs the graph. Rows stream back to the
driver, which appends them to the same feature store as a local run (``FeatureStore`` shards,
every ``shard_rows`` images), so a killed run resumes, a later ``leaf run`` finds every image's
features, and local and Ray extraction can share one store. Images must be readable at the
same path on every node."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafiqa.data.manifest import DataError, Manifest
from leafiqa.distributed.cluster import cluster_cpus, ensure_ray
from leafiqa.errors import ConfigError
from leafiqa.student.features import FeatureExtractor, SingleSizeFeatures


@dataclass
class RayFeaturesReport:
    extracted: int = 0
    already_stored: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    actors: int = 0

    def summary(self) -> str:
        rate = self.extracted / self.seconds if self.seconds else 0.0
        return (f"extracted {self.extracted} image-sizes, {self.already_stored} already stored, "
                f"{len(self.failures)} failed, in {self.seconds:.1f} s ({rate:.1f}/s; "
                f"{self.actors} actors)")


class FeatureActor:
    """One ONNX Runtime session of the backbone per actor, built from the graph's bytes."""

    def __init__(self, graph: bytes, input_size: int, threads: int, batch_size: int,
                 decode_workers: int) -> None:
        import onnxruntime as ort
        import ray

        if isinstance(graph, ray.ObjectRef):
            graph = ray.get(graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_size = input_size
        self.batch_size = batch_size
        self.decode_workers = decode_workers

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from leafiqa.data.loader import iter_batches

        paths = [Path(str(p)) for p in batch["path"]]
        rows: list[np.ndarray | None] = [None] * len(paths)
        errors = [""] * len(paths)
        try:
            for decoded in iter_batches(paths, self.input_size, self.batch_size,
                                        self.decode_workers):
                for position, reason in decoded.failures:
                    errors[position] = reason
                if decoded.indices:
                    output = self.session.run(None, {"images": decoded.pixels})[0]
                    for position, row in zip(decoded.indices, output, strict=True):
                        rows[position] = row.astype(np.float32)
        except Exception as error:  # noqa: BLE001 - one bad block must not end the pool
            for i in range(len(paths)):
                errors[i] = errors[i] or f"{type(error).__name__}: {error}"
        width = next((r.size for r in rows if r is not None), 0)
        features = np.zeros((len(paths), width), dtype=np.float32)
        for i, row in enumerate(rows):
            if row is not None and not errors[i]:
                features[i] = row
        return {"key": batch["key"], "path": batch["path"], "features": features,
                "error": np.array(errors, dtype=object)}


def _extract_level(level: SingleSizeFeatures, paths: Sequence[str], keys: Sequence[str],
                   report: RayFeaturesReport, actors: int, threads: int, block_size: int
                   ) -> None:
    import ray
    import ray.data

    store = level.store
    todo = {key: path for key, path in zip(keys, paths, strict=True) if key not in store}
    report.already_stored += len(set(keys)) - len(todo)
    if not todo:
        return
    graph = level.onnx_graph().read_bytes()
    items = [{"key": k, "path": p} for k, p in todo.items()]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // block_size)))
    results = dataset.map_batches(
        FeatureActor, batch_size=block_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"graph": ray.put(graph), "input_size": level.input_size,
                               "threads": threads, "batch_size": level.batch_size,
                               "decode_workers": 0},
        num_cpus=threads)
    pending_keys: list[str] = []
    pending_rows: list[np.ndarray] = []
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        ok = [i for i, error in enumerate(batch["error"]) if not error]
        report.failures += [f"{batch['path'][i]}: {batch['error'][i]}"
                            for i in range(len(batch["error"])) if batch["error"][i]]
        if ok:
            pending_keys += [str(batch["key"][i]) for i in ok]
            pending_rows.append(np.asarray(batch["features"])[ok])
            report.extracted += len(ok)
        if len(pending_keys) >= level.shard_rows:
            store.append(pending_keys, np.concatenate(pending_rows))
            pending_keys, pending_rows = [], []
    if pending_keys:
        store.append(pending_keys, np.concatenate(pending_rows))


def extract_with_ray(extractor: FeatureExtractor, manifest: Manifest, keys: Sequence[str], *,
                     address: str | None = None, actors: int | None = None, threads: int = 1,
                     block_size: int = 64, num_cpus: int | None = None) -> RayFeaturesReport:
    """Fill ``extractor``'s stores with the features of ``manifest``'s images (``keys``: their
    content hashes) on a Ray cluster; raises ``DataError`` naming the images that could not be
    decoded, after storing every other one."""
    ensure_ray(address, num_cpus)
    report = RayFeaturesReport(actors=actors or max(1, cluster_cpus() // threads))
    paths = [str(item.path) for item in manifest]
    start = time.perf_counter()
    for level in extractor.levels:
        if level.runtime != "onnx":
            raise ConfigError("--engine ray needs ONNX Runtime (pip install onnxruntime)")
        _extract_level(level, paths, keys, report, report.actors, threads, block_size)
    report.seconds = time.perf_counter() - start
    if report.failures:
        raise DataError(f"{len(report.failures)} image(s) could not be decoded: "
                        + "; ".join(report.failures[:5]))
    return report
