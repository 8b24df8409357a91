"""Simulated rating studies with a known truth: each image's true quality (e.g. clive-dev's MOS
mapped onto the ACR scale) and its opinion spread, raters with their own bias and noise, and a
share of careless raters (random buttons, or one button). Used by the tests and by
benchmarks/bench_rating_screening.py to show what screening buys over a plain mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from leafiqa.ratings.screening import Votes, estimate
from leafiqa.ratings.study import StudySettings


@dataclass
class Simulation:
    images: int = 60
    raters: int = 12
    careless: float = 0.25        # share of raters answering without looking
    coverage: float = 1.0         # share of the images each rater gets to
    bias_sd: float = 0.3          # per-rater offset, ACR levels
    noise: tuple[float, float] = (0.2, 0.6)  # per-rater inconsistency, uniform range
    gold: int = 4
    repeats: int = 3


def to_acr(mos: np.ndarray, spread: np.ndarray, low: float, high: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """MOS and its std on ``[low, high]`` → the 1..5 ACR scale."""
    scale = 4.0 / (high - low)
    return 1.0 + (mos - low) * scale, spread * scale


def simulate_votes(truth: np.ndarray, ambiguity: np.ndarray, sim: Simulation,
                   rng: np.random.Generator) -> tuple[Votes, np.ndarray, list[bool]]:
    """Draw a study: the first ``sim.images`` entries of a random permutation of ``truth`` are
    rated, the next ``sim.gold`` are gold (their rounded truth is the answer). Returns the
    votes, the study images' truth, and which raters were careless."""
    # gold images are the clear cases an owner would pick: near either end of the scale
    clear = np.flatnonzero((np.abs(truth - 3.0) > 1.2) & (ambiguity < np.median(ambiguity)))
    gold_rows = rng.choice(clear, size=sim.gold, replace=False)
    rest = rng.permutation(np.setdiff1d(np.arange(len(truth)), gold_rows))[: sim.images]
    order = np.concatenate([rest, gold_rows])
    true_q, spread = truth[order], ambiguity[order]
    rows = len(order)
    gold = np.full(rows, np.nan)
    gold[sim.images:] = np.clip(np.round(true_q[sim.images:]), 1, 5)
    careless = [bool(k < round(sim.careless * sim.raters)) for k in range(sim.raters)]
    scores = np.full((rows, sim.raters, 2), np.nan)
    for s in range(sim.raters):
        seen = rng.random(rows) < sim.coverage
        seen[sim.images:] = True
        bias = rng.normal(0.0, sim.bias_sd)
        noise = rng.uniform(*sim.noise)
        repeat = rng.choice(np.flatnonzero(seen[: sim.images]),
                            size=min(sim.repeats, int(seen[: sim.images].sum())), replace=False)
        for r in (0, 1):
            rows_r = np.flatnonzero(seen) if r == 0 else repeat
            if careless[s]:
                one_button = s % 2 == 1
                vote = np.full(len(rows_r), 4.0) if one_button else rng.integers(
                    1, 6, len(rows_r)).astype(float)
            else:
                sd = np.sqrt(noise**2 + spread[rows_r] ** 2)
                vote = np.clip(np.round(true_q[rows_r] + bias + rng.normal(0, 1, len(rows_r))
                                        * sd), 1, 5)
            scores[rows_r, s, r] = vote
    votes = Votes([f"img{k}" for k in range(rows)], [f"r{s}" for s in range(sim.raters)],
                  scores, gold)
    return votes, true_q[: sim.images], careless


def errors(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    ok = ~np.isnan(estimated)
    return {"rmse": float(np.sqrt(np.mean((estimated[ok] - truth[ok]) ** 2))),
            "srcc": float(stats.spearmanr(estimated[ok], truth[ok])[0]),
            "plcc": float(stats.pearsonr(estimated[ok], truth[ok])[0])}


VARIANTS = {  # name → (method, use the gold/repeat/spread checks)
    "plain mean": ("mean", False),
    "BT.500 only": ("bt500", False),
    "checks + BT.500": ("bt500", True),
    "checks + P.913 MLE": ("mle", True),
}


def compare(truth: np.ndarray, ambiguity: np.ndarray, sim: Simulation, seeds: int,
            variants: dict[str, tuple[str, bool]] | None = None
            ) -> dict[str, dict[str, float]]:
    """Mean RMSE / SRCC / PLCC to the true quality per variant over ``seeds`` simulated
    studies, and the share of careless raters each variant kept."""
    variants = variants or VARIANTS
    settings = StudySettings(scale="acr")
    sums: dict[str, dict[str, float]] = {name: {} for name in variants}
    for seed in range(seeds):
        votes, true_q, careless = simulate_votes(truth, ambiguity, sim,
                                                 np.random.default_rng(seed))
        for name, (method, checks) in variants.items():
            result = estimate(votes, settings, method=method, use_checks=checks)
            figures = errors(result.mos, true_q)
            kept = [method == "mean" or not (c.screened_out or (checks and c.reasons))
                    for c in result.checks]
            bad_kept = [k for k, bad in zip(kept, careless, strict=True) if bad]
            good_kept = [k for k, bad in zip(kept, careless, strict=True) if not bad]
            figures["careless kept"] = float(np.mean(bad_kept)) if bad_kept else 0.0
            figures["honest kept"] = float(np.mean(good_kept))
            for key, value in figures.items():
                sums[name][key] = sums[name].get(key, 0.0) + value / seeds
    return sums


@dataclass
class RaterSpec:
    kind: str  # "honest" | "random" | "one-button" | "inverse"
    offset: float = 0.0   # levels
    noise: float = 0.5    # levels (sd)


def simulate_panel(truth: np.ndarray, ambiguity: np.ndarray, raters, *,  # noqa: ANN001
                   scale: str = "acr", gold: int = 2, repeats: int = 3,
                   rng: np.random.Generator, gold_truth: np.ndarray | None = None
                   ) -> tuple[Votes, np.ndarray]:
    """(TEMPORARY lead stand-in until the screening helper's version lands.)"""
    gold_truth = np.array([1.2, 4.8])[:gold] if gold_truth is None else gold_truth
    n = len(truth)
    true_q = np.concatenate([truth, gold_truth])
    spread = np.concatenate([ambiguity, np.zeros(len(gold_truth))])
    rows = len(true_q)
    gold_col = np.full(rows, np.nan)
    gold_col[n:] = np.clip(np.round(gold_truth), 1, 5)
    scores = np.full((rows, len(raters), 2), np.nan)
    for s, rater in enumerate(raters):
        repeat = rng.choice(n, size=min(repeats, n), replace=False)
        for r in (0, 1):
            rows_r = np.arange(rows) if r == 0 else repeat
            if rater.kind == "random":
                vote = rng.integers(1, 6, len(rows_r)).astype(float)
            elif rater.kind == "one-button":
                vote = np.full(len(rows_r), 4.0)
            else:
                q = true_q[rows_r] if rater.kind == "honest" else 6.0 - true_q[rows_r]
                sd = np.sqrt(rater.noise**2 + spread[rows_r] ** 2)
                vote = np.clip(np.round(q + rater.offset + rng.normal(0, 1, len(rows_r)) * sd),
                               1, 5)
            scores[rows_r, s, r] = vote
    votes = Votes([f"img{k}" for k in range(rows)], [f"r{s}" for s in range(len(raters))],
                  scores, gold_col)
    return votes, truth
