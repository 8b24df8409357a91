"""``leaf teach --engine ray``: the teacher over a pool of images as a Ray Data pipeline.

1. Hash every image (Ray tasks, streamed back in chunks): the driver registers the images and
   keeps the ones whose judgment is not stored yet — their (path, key) rows go to the object
   store chunk by chunk, so the driver holds keys, never images or the pool's judgments.
2. Ask the teacher (an actor pool: an OpenAI-compatible client over one or several endpoints,
   or a vLLM engine per GPU actor) for each pending image; each batch's judgments come back to
   the driver (one object-store block per batch, so each lands as soon as it is done), which
   is the only writer of the SQLite store and writes them as they arrive
   (one row per key: a re-executed task cannot add a second one). A failure is stored as such
   and asked again by the next run; a killed run resumes with what is missing.
3. Plan pairs from the stored point-wise scores (the same plan as the local runner) and ask for
   the pairs not stored yet the same way; teachers that cannot compare images get derived pairs.

Images must be readable at the same path on every node (a shared or mounted filesystem).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from leafiqa.data.images import ImageDecodeError, content_hash
from leafiqa.data.manifest import ImageItem, Manifest
from leafiqa.distributed.cluster import (
    cluster_cpus,
    ensure_ray,
    leaf_error_in,
    wait_for_actors_gone,
)
from leafiqa.judgments.runner import TeachReport, plan_pairs, record_result
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.protocol import (
    JudgmentFailure,
    PairJob,
    PairJudgment,
    PointJob,
    PointJudgment,
    Teacher,
    TeacherError,
)


@dataclass
class RayTeachReport(TeachReport):
    nodes: Counter = field(default_factory=Counter, repr=False)
    actors: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (super().summary() + f" — Ray: {self.actors} actors on {len(self.nodes)} node(s), "
                f"{self.seconds:.1f} s")


# -- records crossing the object store ------------------------------------------------------------

def encode(result: PointJudgment | PairJudgment | JudgmentFailure) -> tuple[str, str]:
    kind = {PointJudgment: "point", PairJudgment: "pair", JudgmentFailure: "failure"}[type(result)]
    return kind, json.dumps(asdict(result))


def decode(kind: str, record: str) -> PointJudgment | PairJudgment | JudgmentFailure:
    values = json.loads(record)
    if kind == "point":
        return PointJudgment(**{**values, "levels": tuple(values["levels"]),
                                "probs": tuple(values["probs"])})
    if kind == "pair":
        return PairJudgment(**values)
    return JudgmentFailure(**{**values, "keys": tuple(values["keys"])})


# -- the workers ----------------------------------------------------------------------------------

def hash_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys, errors = [], []
    for path in batch["path"]:
        try:
            keys.append(content_hash(str(path)))
            errors.append("")
        except ImageDecodeError as error:
            keys.append("")
            errors.append(str(error))
    return {**batch, "key": np.array(keys, dtype=object), "error": np.array(errors, dtype=object)}


class TeacherActor:
    """A teacher per actor, built from its spec (``openai``, ``vllm:MODEL``, ``cues`` …)."""

    def __init__(self, spec: str, options: dict) -> None:
        import ray

        from leafiqa.teachers.specs import make_teacher

        self.teacher = make_teacher(spec, **options)
        self.node = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs: list[Any]
        if "key_b" in batch:
            jobs = [PairJob(ImageItem(path=_path(pa), name=str(na)), ImageItem(path=_path(pb),
                                                                              name=str(nb)),
                            str(ka), str(kb))
                    for pa, na, ka, pb, nb, kb in zip(batch["path"], batch["name"],
                                                      batch["key"], batch["path_b"],
                                                      batch["name_b"], batch["key_b"],
                                                      strict=True)]
            results: Iterator = self.teacher.judge_pairs(jobs)
        else:
            jobs = [PointJob(ImageItem(path=_path(p), name=str(n)), str(k))
                    for p, n, k in zip(batch["path"], batch["name"], batch["key"], strict=True)]
            results = self.teacher.judge_points(jobs)
        encoded = [encode(result) for result in results]
        return {"kind": np.array([k for k, _ in encoded], dtype=object),
                "record": np.array([r for _, r in encoded], dtype=object),
                "node": np.array([self.node] * len(encoded), dtype=object),
                "pid": np.array([self.pid] * len(encoded), dtype=np.int64)}


def _path(value: object):  # noqa: ANN202
    from pathlib import Path

    return Path(str(value))


# -- the driver -----------------------------------------------------------------------------------

@dataclass
class RaySettings:
    address: str | None = None
    actors: int | None = None  # teacher actors (default: one per CPU, at least 2)
    batch_size: int = 16  # jobs per actor call (the actor's client runs them concurrently)
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor (vLLM)
    local_cpus: int | None = None  # CPUs of a local Ray started here
    # the teacher actors' Ray runtime environment (env_vars, pip, working_dir, …): e.g. a token
    # for the model hub, or vLLM installed on the GPU nodes' workers only
    runtime_env: dict | None = None


def _chunks_to_dataset(chunks: Sequence) -> Any:  # a ray.data.Dataset
    import ray.data

    return ray.data.from_arrow_refs(list(chunks))


def _put_rows(rows: list[dict]) -> object:
    import pyarrow as pa
    import ray

    return ray.put(pa.Table.from_pylist(rows))


def _judge(spec: str, options: dict, chunks: Sequence, settings: RaySettings, actors: int,
           store: JudgmentStore, report: RayTeachReport,
           on_batch: Callable[[dict], None] | None) -> None:
    import ray.data

    results = _chunks_to_dataset(chunks).map_batches(
        TeacherActor, batch_size=settings.batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"spec": spec, "options": options},
        # a killed actor is restarted and its chunk retried: Ray Data's default for actor
        # pools (max_restarts = max_task_retries = -1)
        num_cpus=settings.num_cpus, num_gpus=settings.num_gpus or None,
        **({"runtime_env": settings.runtime_env} if settings.runtime_env else {}))
    batches = iter(results.iter_batches(batch_size=None, batch_format="numpy"))
    try:
        for batch in batches:
            _store_batch(batch, store, report, on_batch)
    except BaseException as error:
        # Stop the pipeline now, not when the iterator is garbage-collected (an exception's
        # traceback keeps it alive): its actors would go on asking the teacher after this run
        # has given up, racing a rerun that asks for the same images.
        _stop(batches)
        cause = leaf_error_in(error) if isinstance(error, Exception) else None
        if cause is None:
            raise
        # what the actors judged before the failure is stored already; a rerun resumes
        # (Ray appends its retry advice on further lines)
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise TeacherError(f"teacher actors failed: {reason}") from None


def _stop(batches: Iterator) -> None:
    close = getattr(batches, "close", None)
    if close is not None:
        close()  # shuts the streaming executor down, killing its actors
    wait_for_actors_gone("TeacherActor")


def _store_batch(batch: dict, store: JudgmentStore, report: RayTeachReport,
             on_batch: Callable[[dict], None] | None) -> None:
    for kind, record in zip(batch["kind"], batch["record"], strict=True):
        record_result(decode(str(kind), str(record)), store, report)
    report.nodes.update(str(n) for n in batch["node"])
    if on_batch:
        on_batch(batch)


def teach_with_ray(teacher_spec: str, teacher_options: dict, manifest: Manifest,
                   store: JudgmentStore, *, pairs_per_image: int = 0, near_fraction: float = 0.5,
                   pair_seed: int = 0, max_requests: int | None = None,
                   settings: RaySettings | None = None,
                   on_batch: Callable[[dict], None] | None = None) -> RayTeachReport:
    """Like ``judgments.runner.teach`` (same store, same pair plan, same resume rule), with
    the teacher running in a Ray actor pool."""
    from leafiqa.teachers.specs import make_teacher

    settings = settings or RaySettings()
    ensure_ray(settings.address, settings.local_cpus)
    import ray.data

    identity: Teacher = make_teacher(teacher_spec, **teacher_options)  # id and capabilities
    identity.close()
    report = RayTeachReport(identity.teacher_id, identity.prompt_version, images=len(manifest))
    actors = settings.actors or max(2, int(cluster_cpus() // max(settings.num_cpus, 1e-3)))
    report.actors = actors
    start = time.perf_counter()

    # 1. hash (streamed), register, keep what is missing
    listing = ray.data.from_items(
        [{"path": str(item.path), "name": item.name} for item in manifest],
        override_num_blocks=max(1, min(64, len(manifest) // 64)))
    keys: list[str] = []
    item_of: dict[str, tuple[str, str]] = {}
    pending: list = []
    rows: list[dict] = []
    budget = max_requests
    for batch in listing.map_batches(hash_batch, batch_format="numpy").iter_batches(
            batch_size=1024, batch_format="numpy"):
        good = [(str(k), str(p), str(n)) for k, p, n, e in zip(
            batch["key"], batch["path"], batch["name"], batch["error"], strict=True) if not e]
        for error in batch["error"]:
            if error and len(report.errors) < 20:
                report.errors.append(str(error))
        report.points_failed += sum(1 for e in batch["error"] if e)
        store.register_images((k, n, p) for k, p, n in good)
        stored = store.points(identity.teacher_id, identity.prompt_version, [k for k, _, _ in good])
        for key, path, name in good:
            keys.append(key)
            if key in item_of:
                continue
            item_of[key] = (path, name)
            if key in stored:
                report.points_stored_before += 1
            elif budget is None or budget > 0:
                rows.append({"path": path, "name": name, "key": key})
                budget = None if budget is None else budget - 1
            else:
                report.budget_exhausted = True
            if len(rows) >= settings.batch_size:  # one object (one actor call) per batch
                pending.append(_put_rows(rows))
                rows = []
    if rows:
        pending.append(_put_rows(rows))
    if pending:
        _judge(teacher_spec, teacher_options, pending, settings, actors, store, report, on_batch)
    if pairs_per_image <= 0 or report.budget_exhausted:
        report.seconds = time.perf_counter() - start
        return report

    # 2. pairs, planned as the local runner plans them
    planned = plan_pairs(store, identity, keys, report, pairs_per_image=pairs_per_image,
                         near_fraction=near_fraction, pair_seed=pair_seed)
    if not identity.supports_pairs:
        report.seconds = time.perf_counter() - start
        return report
    pending, rows = [], []
    for key_a, key_b in planned:
        if store.has_pair(key_a, key_b, identity.teacher_id, identity.prompt_version):
            report.pairs_stored_before += 1
            continue
        if budget is not None and budget <= 0:
            report.budget_exhausted = True
            break
        budget = None if budget is None else budget - 1
        (path_a, name_a), (path_b, name_b) = item_of[key_a], item_of[key_b]
        rows.append({"path": path_a, "name": name_a, "key": key_a,
                     "path_b": path_b, "name_b": name_b, "key_b": key_b})
        if len(rows) >= settings.batch_size:
            pending.append(_put_rows(rows))
            rows = []
    if rows:
        pending.append(_put_rows(rows))
    if pending:
        _judge(teacher_spec, teacher_options, pending, settings, actors, store, report, on_batch)
    report.seconds = time.perf_counter() - start
    return report
