"""Run a teacher over a manifest: ask only what the store lacks, store each answer on arrival."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from tqdm.auto import tqdm

from leafiqa.data.images import content_hash
from leafiqa.data.manifest import DataError, ImageItem, Manifest, printable
from leafiqa.judgments.pairs import derive_pairs, select_pairs
from leafiqa.judgments.store import JudgmentStore, pair_claim_key
from leafiqa.redact import redact
from leafiqa.teachers.protocol import (
    JudgmentFailure,
    PairJob,
    PairJudgment,
    PointJob,
    PointJudgment,
    Teacher,
    TeacherError,
)

log = logging.getLogger(__name__)


@dataclass
class TeachReport:
    teacher_id: str
    prompt_version: str
    images: int = 0
    points_stored_before: int = 0
    points_new: int = 0
    points_failed: int = 0
    pairs_planned: int = 0
    pairs_stored_before: int = 0
    pairs_new: int = 0
    pairs_failed: int = 0
    pairs_derived: int = 0
    budget_exhausted: bool = False
    claimed_elsewhere: int = 0  # jobs another process held a lease on (it asks them)
    unreadable: int = 0  # image files that could not be read (not judged, not stored)
    errors: list[str] = field(default_factory=list)
    planned_pairs: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        text = (
            f"{self.teacher_id} [{self.prompt_version}] on {self.images} images: point-wise "
            f"{self.points_new} new, {self.points_stored_before} already stored, "
            f"{self.points_failed} failed"
        )
        if self.pairs_planned:
            text += (
                f"; pair-wise {self.pairs_new} new, {self.pairs_stored_before} already stored, "
                f"{self.pairs_failed} failed, {self.pairs_derived} derived "
                f"(of {self.pairs_planned} planned)"
            )
        if self.claimed_elsewhere:
            text += f"; {self.claimed_elsewhere} left to another process teaching this store"
        if self.unreadable:
            text += f"; {self.unreadable} image file(s) unreadable"
        if self.budget_exhausted:
            text += "; request budget reached — rerun to continue"
        return text

    @property
    def succeeded(self) -> int:
        """Judgments now stored for this run's images (new or from an earlier run)."""
        return (self.points_new + self.points_stored_before + self.pairs_new
                + self.pairs_stored_before + self.pairs_derived)


def hash_manifest(manifest: Manifest, progress: bool = False) -> list[str]:
    items: Iterable[ImageItem] = manifest.items
    if progress and len(manifest) > 500:
        items = tqdm(items, desc="hashing images", unit="img", leave=False)
    return [content_hash(item.path) for item in items]


def readable_images(manifest: Manifest, report: TeachReport, strict: bool = False,
                    progress: bool = False) -> tuple[Manifest, list[str]]:
    """The images whose files can be read, with their content hashes; each unreadable one is
    counted in ``report`` with its reason (``strict``: the first one raises)."""
    items: Iterable[ImageItem] = manifest.items
    if progress and len(manifest) > 500:
        items = tqdm(items, desc="hashing images", unit="img", leave=False)
    kept: list[ImageItem] = []
    keys: list[str] = []
    unlisted = cast(list, manifest.extra.get("unreadable", []))
    for reason in unlisted:  # folders the reader could not list
        if strict:
            raise DataError(str(reason))
        report.unreadable += 1
        if len(report.errors) < 20:
            report.errors.append(str(reason))
    for item in items:
        try:
            keys.append(content_hash(item.path))
        except DataError as error:
            if strict:
                raise
            report.unreadable += 1
            if len(report.errors) < 20:
                report.errors.append(str(error))
            log.warning("skipped %s", error)
            continue
        kept.append(item)
    if len(kept) == len(manifest):
        return manifest, keys
    return manifest.subset(kept, "readable"), keys


def _bounded(jobs: list, budget: int | None) -> tuple[list, bool]:
    if budget is None or len(jobs) <= budget:
        return jobs, False
    return jobs[: max(budget, 0)], True


def record_result(result: PointJudgment | PairJudgment | JudgmentFailure,
                  store: JudgmentStore, report: TeachReport) -> str | None:
    """Store one answer of a teacher (a judgment, or a failure to be asked again) and count it
    in ``report``. A failure's message, redacted, is returned and kept among the report's first
    20 errors; None for a judgment."""
    if isinstance(result, JudgmentFailure):
        store.put_failure(result)
        if result.kind == "point":
            report.points_failed += 1
        else:
            report.pairs_failed += 1
        message = redact(result.error)
        if len(report.errors) < 20:
            report.errors.append(message)
        return message
    if isinstance(result, PointJudgment):
        store.put_point(result)
        report.points_new += 1
    else:
        store.put_pair(result)
        report.pairs_new += 1
    return None


def _consume(
    results: Iterator[PointJudgment | PairJudgment | JudgmentFailure],
    store: JudgmentStore,
    report: TeachReport,
    bar: tqdm,
    strict: bool = False,
) -> None:
    for result in results:
        message = record_result(result, store, report)
        if message is not None:
            if strict:
                raise TeacherError(f"--strict: {message}")
            log.warning("judgment failed: %s", message)
        bar.update(1)
        bar.set_postfix(failed=report.points_failed + report.pairs_failed, refresh=False)


def _judge_claimed(
    jobs: list, kind: str, key_of: Callable[[Any], str],
    judge: Callable[[list], Iterator[PointJudgment | PairJudgment | JudgmentFailure]],
    store: JudgmentStore, teacher: Teacher, report: TeachReport, bar: tqdm, strict: bool,
    chunk: int,
) -> None:
    """Claim a chunk of jobs in the store, judge the ones this process got, release them."""
    for start in range(0, len(jobs), max(chunk, 1)):
        part = jobs[start : start + max(chunk, 1)]
        got = set(store.claim(kind, [key_of(job) for job in part], teacher.teacher_id,
                              teacher.prompt_version))
        mine = [job for job in part if key_of(job) in got]
        report.claimed_elsewhere += len(part) - len(mine)
        bar.update(len(part) - len(mine))
        try:
            if mine:
                _consume(judge(mine), store, report, bar, strict)
        finally:
            store.release(kind, [key_of(job) for job in mine], teacher.teacher_id,
                          teacher.prompt_version)


def plan_pairs(store: JudgmentStore, teacher: Teacher, keys: Sequence[str],
               report: TeachReport, *, pairs_per_image: int, near_fraction: float = 0.5,
               pair_seed: int = 0) -> list[tuple[str, str]]:
    """The pairs to compare among the images the teacher has judged point-wise (recorded in
    ``report``); for a teacher that cannot compare images, their judgments derived from the
    point-wise ones are stored here and then. Shared by every engine (local and Ray)."""
    points = store.points(teacher.teacher_id, teacher.prompt_version, keys)
    scores = {k: p.score for k, p in points.items()}
    judged_keys = [k for k in dict.fromkeys(keys) if k in points]
    planned = select_pairs(judged_keys, scores, pairs_per_image=pairs_per_image,
                           near_fraction=near_fraction, seed=pair_seed)
    report.pairs_planned = len(planned)
    report.planned_pairs = planned
    if not teacher.supports_pairs:
        derived = derive_pairs(points, planned)
        store.put_pairs(derived)
        report.pairs_derived = len(derived)
    return planned


def teach(
    teacher: Teacher,
    manifest: Manifest,
    store: JudgmentStore,
    *,
    pairs_per_image: int = 0,
    near_fraction: float = 0.5,
    pair_seed: int = 0,
    max_requests: int | None = None,
    progress: bool = True,
    strict: bool = False,
    claim_chunk: int = 128,
) -> TeachReport:
    """Point-wise judgments for every image, then pair-wise ones for selected pairs.

    Pairs are queried (both orders) when the teacher can compare images, otherwise derived
    from its point-wise judgments. ``max_requests`` caps the judgments asked in this run (a
    pair counts once although it takes two queries). An unreadable image file is counted
    in ``report.unreadable`` and left out; ``strict`` stops at the first bad input instead.

    Several processes may teach into one store at once: each job is claimed in the store
    (a lease, ``claim_chunk`` jobs at a time) before it is asked, so they split the work
    instead of paying twice for the same judgments."""
    report = TeachReport(teacher.teacher_id, teacher.prompt_version, images=len(manifest))
    manifest, keys = readable_images(manifest, report, strict, progress)
    store.register_images((k, printable(i.name), printable(i.path))
                          for k, i in zip(keys, manifest, strict=True))
    stored = store.points(teacher.teacher_id, teacher.prompt_version, keys)
    report.points_stored_before = len(stored)
    seen: set[str] = set()
    jobs: list[PointJob] = []
    for key, item in zip(keys, manifest, strict=True):
        if key not in stored and key not in seen:
            jobs.append(PointJob(item, key))
            seen.add(key)
    jobs, report.budget_exhausted = _bounded(jobs, max_requests)
    remaining = None if max_requests is None else max_requests - len(jobs)
    if jobs:
        with tqdm(total=len(jobs), desc=f"point-wise · {teacher.teacher_id}", unit="img",
                  disable=not progress) as bar:
            _judge_claimed(jobs, "point", lambda job: job.key, teacher.judge_points, store,
                           teacher, report, bar, strict, claim_chunk)
    if pairs_per_image <= 0 or report.budget_exhausted:
        return report

    planned = plan_pairs(store, teacher, keys, report, pairs_per_image=pairs_per_image,
                         near_fraction=near_fraction, pair_seed=pair_seed)
    if not teacher.supports_pairs:
        return report

    item_of = {k: i for k, i in zip(keys, manifest, strict=True)}
    pair_jobs = []
    for key_a, key_b in planned:
        if store.has_pair(key_a, key_b, teacher.teacher_id, teacher.prompt_version):
            report.pairs_stored_before += 1
        else:
            pair_jobs.append(PairJob(item_of[key_a], item_of[key_b], key_a, key_b))
    pair_jobs, exhausted = _bounded(pair_jobs, remaining)
    report.budget_exhausted = report.budget_exhausted or exhausted
    if pair_jobs:
        with tqdm(total=len(pair_jobs), desc=f"pair-wise · {teacher.teacher_id}", unit="pair",
                  disable=not progress) as bar:
            _judge_claimed(pair_jobs, "pair", lambda job: pair_claim_key(job.key_a, job.key_b),
                           teacher.judge_pairs, store, teacher, report, bar, strict, claim_chunk)
    return report
