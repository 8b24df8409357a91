"""Which images get a human MOS label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STRATEGIES = ("random", "spread")


def select_labels(
    n_candidates: int,
    n_labels: int,
    *,
    strategy: str = "random",
    teacher_scores: Sequence[float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Row indices (sorted) of ``n_labels`` images to label out of ``n_candidates``.

    ``random``: a uniform draw. ``spread``: split the images into ``n_labels`` equal-count bins
    of the teacher's score and draw one image from each, so labels cover the whole quality range
    (a 4-parameter logistic fitted on a narrow range extrapolates badly)."""
    if n_labels <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_labels >= n_candidates:
        return np.arange(n_candidates)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n_candidates, size=n_labels, replace=False))
    if strategy != "spread":
        raise ValueError(f"unknown label selection '{strategy}'; choose from {STRATEGIES}")
    if teacher_scores is None or len(teacher_scores) != n_candidates:
        raise ValueError("label selection 'spread' needs a teacher score for every candidate")
    order = np.argsort(np.asarray(teacher_scores, dtype=np.float64), kind="stable")
    bins = np.array_split(order, n_labels)
    return np.sort(np.array([rng.choice(b) for b in bins], dtype=np.int64))
