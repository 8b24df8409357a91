"""The teacher protocol: point-wise and pair-wise quality judgments, each with a reliability.

Scores live on [0, 1] (1 = best). A point-wise judgment carries the teacher's distribution over
its own K quality levels (five for MLLM prompts, two for good/poor logits, none for ensembles);
the score is the distribution's expectation with levels spaced evenly from 1 (best) to 0 (worst).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from leafiqa.data.manifest import ImageItem
from leafiqa.errors import TeacherError

FIVE_LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
TWO_LEVELS: tuple[str, ...] = ("good", "poor")

# Fallback answers (no log-probabilities) are noisier than logit-based ones; their reliability
# is scaled down so the student trusts them less. Logged in the judgment's ``method``.
METHOD_RELIABILITY = {
    "logprobs": 1.0,
    "logits": 1.0,
    "recorded": 1.0,
    "cues": 1.0,
    "ensemble": 1.0,
    "sampled": 0.7,
    "parsed": 0.4,
}




@dataclass(frozen=True)
class PointJudgment:
    image_key: str
    teacher_id: str
    prompt_version: str
    levels: tuple[str, ...]
    probs: tuple[float, ...]
    score: float
    reliability: float
    method: str
    image_name: str = ""


@dataclass(frozen=True)
class PairJudgment:
    """P(A looks better than B), from asking (A, B) and (B, A).

    ``p_first_ab`` is P(first image better) when A was shown first, ``p_first_ba`` when B was
    shown first. ``source`` is ``queried`` (the teacher compared the two images) or ``derived``
    (computed from two point-wise judgments; no pair query was made)."""

    key_a: str
    key_b: str
    teacher_id: str
    prompt_version: str
    p_first_ab: float
    p_first_ba: float
    prob_a_better: float
    reliability: float
    source: str
    method: str

    def flipped(self) -> PairJudgment:
        return PairJudgment(
            key_a=self.key_b,
            key_b=self.key_a,
            teacher_id=self.teacher_id,
            prompt_version=self.prompt_version,
            p_first_ab=self.p_first_ba,
            p_first_ba=self.p_first_ab,
            prob_a_better=1.0 - self.prob_a_better,
            reliability=self.reliability,
            source=self.source,
            method=self.method,
        )


@dataclass(frozen=True)
class JudgmentFailure:
    """A judgment that failed; stored so it is retried on the next run, never used as a score."""

    kind: str  # "point" or "pair"
    keys: tuple[str, ...]
    teacher_id: str
    prompt_version: str
    error: str


def level_values(n_levels: int) -> np.ndarray:
    """Numeric value of each level, best first: 1, …, 0 evenly spaced."""
    if n_levels < 2:
        raise ValueError("a level distribution needs at least two levels")
    return np.linspace(1.0, 0.0, n_levels)


def normalise_probs(probs: Iterable[float], context: str = "") -> np.ndarray:
    array = np.asarray(list(probs), dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise TeacherError(f"{context}: level distribution needs ≥2 entries, got {array.tolist()}")
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise TeacherError(f"{context}: invalid level probabilities {array.tolist()}")
    return array / array.sum()


def expected_score(probs: Sequence[float] | np.ndarray) -> float:
    array = np.asarray(probs, dtype=np.float64)
    return float(np.dot(array, level_values(array.size)))


def log_odds(score: float) -> float:
    """A [0, 1] score as log-odds, the scale students learn from.

    For a two-level (good, poor) teacher this is exactly logit_good − logit_poor, which keeps the
    order and resolution that P(good) = σ(margin) crushes near 0 and 1 (a median margin of 3 is
    P(good) = .95). For K levels it spreads the expected score's ends the same way."""
    clipped = min(max(float(score), 1e-12), 1.0 - 1e-12)
    return math.log(clipped) - math.log1p(-clipped)


def from_log_odds(value: float) -> float:
    """The inverse of ``log_odds``: a score on [0, 1] whose log-odds are ``value``."""
    return float(1.0 / (1.0 + math.exp(-min(max(value, -700.0), 700.0))))


def distribution_reliability(probs: Sequence[float] | np.ndarray) -> float:
    """Confidence of a level distribution: the mean of 1 − normalised entropy and the top-two
    margin. A peaked distribution → 1, a flat one → 0."""
    array = np.asarray(probs, dtype=np.float64)
    nonzero = array[array > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum()) / math.log(array.size)
    top_two = np.sort(array)[-2:]
    margin = float(top_two[1] - top_two[0])
    return float(np.clip(0.5 * (1.0 - entropy) + 0.5 * margin, 0.0, 1.0))


def make_point_judgment(
    *,
    image_key: str,
    teacher_id: str,
    prompt_version: str,
    levels: Sequence[str],
    probs: Sequence[float] | np.ndarray,
    method: str,
    image_name: str = "",
) -> PointJudgment:
    array = normalise_probs(probs, f"{teacher_id} on {image_name or image_key}")
    if len(levels) != array.size:
        raise TeacherError(f"{teacher_id}: {len(levels)} levels but {array.size} probabilities")
    reliability = distribution_reliability(array) * METHOD_RELIABILITY.get(method, 0.5)
    return PointJudgment(
        image_key=image_key,
        teacher_id=teacher_id,
        prompt_version=prompt_version,
        levels=tuple(levels),
        probs=tuple(float(p) for p in array),
        score=expected_score(array),
        reliability=reliability,
        method=method,
        image_name=image_name,
    )


def combine_pair_orders(p_first_ab: float, p_first_ba: float) -> tuple[float, float]:
    """Combine the two presentation orders into P(A better) and a reliability.

    P(A better) averages ``p_first_ab`` and ``1 − p_first_ba`` (cancelling position bias).
    Reliability = order agreement × margin from 0.5: a teacher that always prefers the first
    image, or that cannot decide, teaches nothing about the pair's order."""
    for value in (p_first_ab, p_first_ba):
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise TeacherError(f"pair probability out of [0, 1]: {value}")
    a_from_ab = p_first_ab
    a_from_ba = 1.0 - p_first_ba
    prob_a_better = 0.5 * (a_from_ab + a_from_ba)
    agreement = 1.0 - abs(a_from_ab - a_from_ba)
    margin = abs(2.0 * prob_a_better - 1.0)
    return prob_a_better, float(np.clip(agreement * margin, 0.0, 1.0))


@dataclass(frozen=True)
class PointJob:
    item: ImageItem
    key: str


@dataclass(frozen=True)
class PairJob:
    a: ImageItem
    b: ImageItem
    key_a: str
    key_b: str


class Teacher(ABC):
    """A source of quality judgments. Subclasses implement ``level_probs`` and, when they can
    compare two images, ``first_better_prob``; batching/concurrent teachers override
    ``judge_points`` / ``judge_pairs``."""

    teacher_id: str = "teacher"
    prompt_version: str = "v1"
    levels: tuple[str, ...] = FIVE_LEVELS
    supports_pairs: bool = False

    @abstractmethod
    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        """The distribution over ``self.levels`` (best first) and the method used."""

    def first_better_prob(self, first: ImageItem, second: ImageItem) -> tuple[float, str]:
        raise NotImplementedError(f"{self.teacher_id} does not compare pairs")

    def judge_point(self, job: PointJob) -> PointJudgment:
        probs, method = self.level_probs(job.item)
        return make_point_judgment(
            image_key=job.key,
            teacher_id=self.teacher_id,
            prompt_version=self.prompt_version,
            levels=self.levels,
            probs=probs,
            method=method,
            image_name=job.item.name,
        )

    def judge_pair(self, job: PairJob) -> PairJudgment:
        p_ab, method_ab = self.first_better_prob(job.a, job.b)
        p_ba, method_ba = self.first_better_prob(job.b, job.a)
        return pair_judgment_from_orders(self, job, p_ab, p_ba, method_ab, method_ba)

    def judge_points(self, jobs: Sequence[PointJob]) -> Iterator[PointJudgment | JudgmentFailure]:
        for job in jobs:
            try:
                yield self.judge_point(job)
            except TeacherError as error:
                yield JudgmentFailure("point", (job.key,), self.teacher_id, self.prompt_version,
                                      f"{job.item.path}: {error}")

    def judge_pairs(self, jobs: Sequence[PairJob]) -> Iterator[PairJudgment | JudgmentFailure]:
        for job in jobs:
            try:
                yield self.judge_pair(job)
            except TeacherError as error:
                yield JudgmentFailure("pair", (job.key_a, job.key_b), self.teacher_id,
                                      self.prompt_version, f"{job.a.name} vs {job.b.name}: {error}")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or models."""


def pair_judgment_from_orders(
    teacher: Teacher, job: PairJob, p_ab: float, p_ba: float, method_ab: str, method_ba: str
) -> PairJudgment:
    prob, reliability = combine_pair_orders(p_ab, p_ba)
    method = method_ab if method_ab == method_ba else f"{method_ab}+{method_ba}"
    scale = min(METHOD_RELIABILITY.get(method_ab, 0.5), METHOD_RELIABILITY.get(method_ba, 0.5))
    return PairJudgment(
        key_a=job.key_a,
        key_b=job.key_b,
        teacher_id=teacher.teacher_id,
        prompt_version=teacher.prompt_version,
        p_first_ab=p_ab,
        p_first_ba=p_ba,
        prob_a_better=prob,
        reliability=reliability * scale,
        source="queried",
        method=method,
    )
