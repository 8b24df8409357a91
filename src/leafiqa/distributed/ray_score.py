"""``leaf score --engine ray``: the ONNX student in a Ray Data actor pool over a list of paths.

Every input gets one output row (``path, score, error``; a failure has an empty score and the
reason), written by the driver as batches stream back: appended to the CSV, or as Parquet part
files merged at the end. A rerun skips the paths already in the output, so a killed run resumes.
Images must be readable at the same path on every node (a shared or mounted filesystem)."""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafiqa.distributed.cluster import cluster_cpus, ensure_ray
from leafiqa.errors import ConfigError

COLUMNS = ("path", "score", "error")


@dataclass
class RayScoreReport:
    out: Path
    scored: int = 0
    failed: int = 0
    already_done: int = 0
    seconds: float = 0.0
    actors: int = 0
    engine: str = ""
    nodes: Counter = field(default_factory=Counter)

    @property
    def images_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"scored {self.scored} images, {self.failed} failed, {self.already_done} already "
                f"in {self.out}, in {self.seconds:.1f} s ({self.images_per_s:.1f} img/s; "
                f"{self.actors} actors, {self.engine}, {len(self.nodes)} node(s))")


class ScoreActor:
    """One pixel-graph scorer per actor. The graph travels as bytes (workers on other machines
    need no copy of the model) and is all the actor loads: no PyTorch, no model file, so an
    actor starts in about the time ONNX Runtime takes to load the graph."""

    def __init__(self, graph: bytes, engine: str, threads: int, batch_size: int,
                 decode_threads: int) -> None:
        import ray

        from leafiqa.model.pixel_graph import PixelGraphScorer

        if isinstance(graph, ray.ObjectRef):
            graph = ray.get(graph)
        self.scorer = PixelGraphScorer(graph, threads=threads, engine=engine)
        self.batch_size = batch_size
        self.decode_threads = decode_threads
        self.node = ray.get_runtime_context().get_node_id()
        self.ready = time.time()  # set-up done: what the engine's start-up is measured to

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        scores = np.full(len(paths), np.nan)
        errors = [""] * len(paths)
        position = {p: i for i, p in enumerate(paths)}
        try:
            for scored in self.scorer.iter_scores([Path(p) for p in paths], self.batch_size,
                                                  self.decode_threads):
                for path, value in zip(scored.paths, scored.scores, strict=True):
                    scores[position[str(path)]] = value
                for path, reason in scored.failures:
                    errors[position[str(path)]] = reason
        except Exception as error:  # noqa: BLE001 - one bad batch must not end the catalogue
            for i in range(len(paths)):
                errors[i] = errors[i] or f"{type(error).__name__}: {error}"
        return {"path": np.array(paths, dtype=object), "score": scores,
                "error": np.array(errors, dtype=object),
                "node": np.array([self.node] * len(paths), dtype=object),
                "engine": np.array([self.scorer.engine] * len(paths), dtype=object),
                "ready": np.full(len(paths), self.ready)}


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def done_paths(out: Path) -> set[str]:
    """Paths already scored (or failed) in ``out`` and its unfinished Parquet parts."""
    done: set[str] = set()
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        files = ([out] if out.is_file() else []) + sorted(_parts_dir(out).glob("*.parquet"))
        for file in files:
            done.update(pq.read_table(file, columns=["path"]).column(0).to_pylist())
        return done
    if out.is_file():
        _drop_partial_line(out)
        with out.open(newline="") as handle:
            done.update(row["path"] for row in csv.DictReader(handle) if row.get("path"))
    return done


def _drop_partial_line(path: Path) -> None:
    """A run killed mid-write can leave half a line; cut it so the rerun appends cleanly."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class _Writer:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.parquet = out.suffix == ".parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        if self.parquet:
            self.parts = _parts_dir(out)
            self.parts.mkdir(exist_ok=True)
            self.count = len(list(self.parts.glob("*.parquet")))
        else:
            new = not out.is_file() or out.stat().st_size == 0
            self.handle = out.open("a", newline="")
            self.csv = csv.writer(self.handle)
            if new:
                self.csv.writerow(COLUMNS)

    def write(self, paths: Sequence[str], scores: np.ndarray, errors: Sequence[str]) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"path": list(paths), "score": pa.array(scores, mask=np.isnan(scores)),
                              "error": list(errors)})
            temporary = self.parts / f".part-{self.count:06d}.tmp"
            pq.write_table(table, temporary)
            os.replace(temporary, self.parts / f"part-{self.count:06d}.parquet")
            self.count += 1
            return
        self.csv.writerows([p, "" if np.isnan(s) else f"{s:.6f}", e]
                           for p, s, e in zip(paths, scores, errors, strict=True))
        self.handle.flush()

    def close(self) -> None:
        if not self.parquet:
            self.handle.close()
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = ([self.out] if self.out.is_file() else []) + sorted(self.parts.glob("*.parquet"))
        if files:
            merged = pa.concat_tables([pq.read_table(f) for f in files])
            temporary = self.out.with_name(self.out.name + ".tmp")
            pq.write_table(merged, temporary)
            os.replace(temporary, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)


def score_with_ray(model_path: str | Path, paths: Sequence[Path], out: str | Path, *,
                   address: str | None = None, actors: int | None = None, batch_size: int = 8,
                   block_size: int = 64,
                   precision: str = "auto", threads: int | None = None,
                   num_cpus: int | None = None, decode_threads: int = 2,
                   on_batch: Callable[[dict], None] | None = None) -> RayScoreReport:
    """Score ``paths`` with ``actors`` scoring actors (default: one per CPU of the cluster, one
    inference thread each) and write one row per path to ``out`` (CSV or Parquet)."""
    from leafiqa.model.registry import resolve_model
    from leafiqa.model.scorer import graph_engine, pixel_graph

    model_path, out = resolve_model(model_path), Path(out)
    if out.suffix not in {".csv", ".parquet"}:
        raise ConfigError(f"--out {out}: expected a .csv or .parquet file")
    ray = ensure_ray(address, num_cpus)
    report = RayScoreReport(out)
    done = done_paths(out)
    pending = list(dict.fromkeys(str(p) for p in paths if str(p) not in done))
    report.already_done = len(set(map(str, paths)) & done)
    threads = threads or 1
    report.actors = actors or max(1, cluster_cpus() // threads)
    # the driver picks the graph (INT8 when its parity check passed; FP32 exported otherwise)
    graph_path, parity = pixel_graph(model_path, precision)
    graph = graph_path.read_bytes()
    engine = graph_engine(parity)
    start = time.perf_counter()
    writer = _Writer(out)
    try:
        if pending:
            import ray.data

            # an actor call takes a block of images (Ray's per-call overhead is comparable to
            # scoring a few images at 224 px); inside it, inference runs in batch_size batches
            block = max(batch_size, block_size)
            dataset = ray.data.from_items([{"path": p} for p in pending],
                                          override_num_blocks=max(1, -(-len(pending) // block)))
            results = dataset.map_batches(
                ScoreActor, batch_size=block, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=report.actors),
                fn_constructor_kwargs={"graph": ray.put(graph), "engine": engine,
                                       "threads": threads,
                                       "batch_size": batch_size, "decode_threads": decode_threads},
                # a killed actor is restarted and its block retried: Ray Data's default for
                # actor pools (max_restarts = max_task_retries = -1)
                num_cpus=threads)
            for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
                scores = np.asarray(batch["score"], dtype=np.float64)
                errors = [str(e) for e in batch["error"]]
                writer.write([str(p) for p in batch["path"]], scores, errors)
                report.failed += sum(1 for e in errors if e)
                report.scored += sum(1 for e in errors if not e)
                report.nodes.update(str(n) for n in batch["node"])
                report.engine = str(batch["engine"][0]) if len(batch["engine"]) else report.engine
                if on_batch:
                    on_batch(batch)
    finally:
        writer.close()
    report.seconds = time.perf_counter() - start
    return report
