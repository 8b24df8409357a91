"""Simulated rating panels with a known truth, for the tests, benchmarks/bench_rating_screening.py
and ``leaf bench``'s simulated raters: every rater rates every study image once, a few of them a
second time (planned repeats), and the hidden gold images last.

A rater's vote on an image, on the 1..5 ACR scale before rounding, is

    honest:      truth + opinion + offset + noise      (opinion ~ N(0, ambiguity), the rater's
                                                        own view of the image, the same on a
                                                        repeat; noise ~ N(0, spec.noise), new
                                                        on every vote)
    inverse:     the honest vote mirrored (6 − …): a rater who reads the scale the wrong way
    random:      any level (any slider position) with equal chance
    one-button:  the same level on every image (the slider left where it starts, 50)

rounded to a level (ACR) or to a whole slider step (``scale="slider"``: 0–100, 25 per level)
and kept on the scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from leafiqa.errors import ConfigError
from leafiqa.labelling.screening import Votes

KINDS = ("honest", "random", "one-button", "inverse")
SLIDER_START = 50.0  # where the rating page's slider sits before a rater moves it


@dataclass
class RaterSpec:
    kind: str  # "honest" | "random" | "one-button" | "inverse"
    offset: float = 0.0   # levels
    noise: float = 0.5    # levels (sd)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"RaterSpec.kind: '{self.kind}' is not one of {KINDS}")

    @property
    def careless(self) -> bool:
        return self.kind != "honest"


def to_acr(mos: np.ndarray, spread: np.ndarray, low: float, high: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """MOS and its std on ``[low, high]`` → the 1..5 ACR scale."""
    scale = 4.0 / (high - low)
    return 1.0 + (np.asarray(mos, dtype=np.float64) - low) * scale, \
        np.asarray(spread, dtype=np.float64) * scale


def owner_gold_answer(gold_truth: np.ndarray) -> np.ndarray:
    """What an owner enters for a gold image picked as clearly excellent or clearly broken (the
    advice the README gave before issue 31): the top of the ACR scale for the good ones, the
    bottom for the bad ones, whatever their real quality (e.g. 5 for a photo a lab puts at 4.3)."""
    return np.where(np.asarray(gold_truth) >= 3.0, 5.0, 1.0)


def default_gold_truth(truth: np.ndarray, count: int) -> np.ndarray:
    """Stand-ins for the clearest photos of the owner's folder when none are given: the study's
    best and worst truth, alternately."""
    ends = (float(np.max(truth)), float(np.min(truth)))
    return np.array([ends[k % 2] for k in range(count)], dtype=np.float64)


def simulate_panel(truth: np.ndarray, ambiguity: np.ndarray, raters: Sequence[RaterSpec], *,
                   scale: str = "acr", gold: int = 2, repeats: int = 3,
                   rng: np.random.Generator, gold_truth: np.ndarray | None = None,
                   gold_ambiguity: np.ndarray | None = None) -> tuple[Votes, np.ndarray]:
    """One study rated by ``raters``: ``truth`` and ``ambiguity`` (per study image, on the 1..5
    ACR scale; see :func:`to_acr`) → ``(votes, truth on the study's scale)``.

    Rows: the study images in the given order, then ``gold`` gold images. Their truth is
    ``gold_truth`` (e.g. the clearest photos outside the study; default: the study's best and
    worst, alternately) with opinion spread ``gold_ambiguity`` (default: the study's median),
    and their answer is what an owner enters (:func:`owner_gold_answer`, on the study's scale).
    Each rater votes once on every row and a second time on ``repeats`` study images of their
    own. ``estimate(votes, StudySettings(scale=scale))`` then gives one MOS per study image."""
    truth = np.asarray(truth, dtype=np.float64)
    ambiguity = np.broadcast_to(np.asarray(ambiguity, dtype=np.float64), truth.shape)
    if scale not in ("acr", "slider"):
        raise ConfigError(f"scale: '{scale}' is not 'acr' or 'slider'")
    if gold_truth is None:
        gold_truth = default_gold_truth(truth, gold)
    gold_truth = np.asarray(gold_truth, dtype=np.float64)[:gold]
    if len(gold_truth) < gold:
        raise ConfigError(f"gold_truth: {len(gold_truth)} values for {gold} gold images")
    if gold_ambiguity is None:
        gold_ambiguity = np.full(gold, float(np.median(ambiguity)) if truth.size else 0.0)
    all_truth = np.concatenate([truth, gold_truth])
    all_ambiguity = np.concatenate([ambiguity, np.broadcast_to(gold_ambiguity, (gold,))])
    rows, studied = len(all_truth), len(truth)
    scores = np.full((rows, len(raters), 2), np.nan)
    for s, spec in enumerate(raters):
        opinion = all_truth + spec.offset + rng.normal(0.0, 1.0, rows) * all_ambiguity
        again = rng.choice(studied, size=min(repeats, studied), replace=False)
        button = SLIDER_START if scale == "slider" else float(rng.integers(1, 6))
        for r, shown in enumerate((np.arange(rows), again)):
            scores[shown, s, r] = _votes(spec, opinion[shown], scale, button, rng)
    answers = owner_gold_answer(gold_truth)
    if scale == "slider":
        answers = (answers - 1.0) * 25.0
    votes = Votes([f"img{k}" for k in range(studied)] + [f"gold{k}" for k in range(gold)],
                  [f"{spec.kind}{s}" for s, spec in enumerate(raters)], scores,
                  np.concatenate([np.full(studied, np.nan), answers]))
    return votes, truth if scale == "acr" else (truth - 1.0) * 25.0


def _votes(spec: RaterSpec, opinion: np.ndarray, scale: str, button: float,
           rng: np.random.Generator) -> np.ndarray:
    """One vote per shown row (opinion in ACR levels, 1..5) on the study's scale."""
    count = len(opinion)
    if spec.kind == "one-button":
        return np.full(count, button)
    if spec.kind == "random":
        return (rng.integers(0, 101, count) if scale == "slider"
                else rng.integers(1, 6, count)).astype(np.float64)
    seen = opinion + rng.normal(0.0, spec.noise, count)
    if spec.kind == "inverse":
        seen = 6.0 - seen
    if scale == "slider":
        return np.clip(np.round((seen - 1.0) * 25.0), 0.0, 100.0)
    return np.clip(np.round(seen), 1.0, 5.0)


def errors(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, SRCC and PLCC of an estimated MOS against the truth (images with a MOS)."""
    ok = ~np.isnan(estimated)
    return {"rmse": float(np.sqrt(np.mean((estimated[ok] - truth[ok]) ** 2))),
            "srcc": float(stats.spearmanr(estimated[ok], truth[ok])[0]),
            "plcc": float(stats.pearsonr(estimated[ok], truth[ok])[0])}
