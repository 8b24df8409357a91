"""How good the calibrated model is, estimated from the labels it was calibrated on alone.

Every choice calibration makes from the labels (the line, the form, the feature prior, the
penalty, the outer logistic) is inside the estimate: ``calibrate_prior`` is rerun on each fold's
training labels and predicts the fold's held-out labels (cross-validation of the whole
procedure). Pooling out-of-fold predictions of a few labels is pessimistic — each fold's line is
refitted, and the pooled predictions of different lines rank worse than any one of them (a
plain leave-one-out + bootstrap was −.16 SRCC off at 22 labels). So the estimate is

    m(student score, MOS on the labels) + [m(out-of-fold, whole procedure) − m(out-of-fold,
    line only)]

The first term is what the model is with no correction: its ranking is the distilled student's,
which never saw a label, so on a random sample of images it is unbiased — provided the student
scores are the ones a *new* image gets. The labelled images were distillation images too, and
in sample the student agrees with the teacher (and through it with MOS) more than on images it
never saw, so callers pass out-of-sample student scores (the ridge head's exact leave-one-out,
``methods.unseen_scores``) as ``student_scores``. The bracket is the correction's gain,
measured on the same folds for both, so the pooling loss cancels. Each fold refits the
calibration exactly as the model was calibrated — on ``fit_scores``, the labelled images'
scores as the calibration saw them (in sample: the student as distilled on them) — and
predicts its held-out labels as new images (from ``student_scores``): the estimate is of the
procedure that made the model, each held-out label playing a new image. The 90 % interval is a
bootstrap over the labelled images of that statistic.

Labels chosen on purpose are not a random sample (k-center picks spread-out images, which
inflates a rank correlation): ``weights`` — how many pool images each labelled image stands for
(``labelling.designs.representation_weights``) — make every term a weighted correlation over the
pool those images represent.

What it estimates is agreement with what a large panel would say. Labels from a lab (dozens of
raters an image) are that panel; labels from two or three people are not: their own noise
attenuates every correlation against them. ``label_noise`` — each label's error variance
against a large panel's MOS, from the ratings themselves (``labelling.reliability``) — gives the
labels' reliability over the pool, ``1 − mean(noise) / variance(MOS)``, and every correlation is
divided by its square root (Spearman's correction for attenuation); the bootstrap recomputes it
on each resample, so its own uncertainty is in the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from leafiqa.calibration.prior import MIN_GAIN_SE, PoolSample, calibrate_prior
from leafiqa.student.ridge import FeatureScaler, RidgeBasis

#: fewer labels than this give no estimate (a rank correlation of four points says nothing)
MIN_LABELS_FOR_ESTIMATE = 5
#: below this the labels are mostly noise: the correction for attenuation stops here (and the
#: estimate says so) rather than inflating a correlation of noise
MIN_RELIABILITY = 0.3
FOLDS = 10
MANY_LABELS = 200
BOOTSTRAP = 1000
LEVEL = 0.90


@dataclass
class AccuracyEstimate:
    """Expected SRCC and PLCC on new images of the pool, with a ``level`` interval."""

    srcc: float
    srcc_low: float
    srcc_high: float
    plcc: float
    plcc_low: float
    plcc_high: float
    n_labels: int
    level: float = LEVEL
    weighted: bool = False  # labels re-weighted for how they were chosen
    #: the labels' reliability against a large panel, corrected for (None: taken as exact)
    reliability: float | None = None
    #: what the estimate speaks for: "pool" (the pool's images the model was distilled on and
    #: never labelled) or "new" (images the student never saw)
    target: str = "new"

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def srcc_interval_for(self, n_images: int) -> tuple[float, float]:
        """The interval widened for what a test set of ``n_images`` would measure (its own
        sampling spread, Bonett–Wright's variance of Fisher's z of a Spearman correlation,
        added to the estimate's)."""
        z = _quantile(self.level)
        half = (self.srcc_high - self.srcc_low) / 2
        rho = float(np.clip(self.srcc, -0.999, 0.999))
        test_sd = (1 - rho**2) * np.sqrt((1 + rho**2 / 2) / max(n_images - 3, 1))
        widened = float(np.hypot(half, z * test_sd))
        centre = (self.srcc_high + self.srcc_low) / 2
        return centre - widened, centre + widened

    def summary(self) -> str:
        note = ", weighted for the selection" if self.weighted else ""
        if self.reliability is not None:
            note += f", corrected for their noise (reliability {self.reliability:.2f})"
        where = ("on the pool's unlabelled images" if self.target == "pool"
                 else "on new images")
        return (f"expected {where} (from {self.n_labels} labels{note}): "
                f"SRCC {self.srcc:.3f} [{self.srcc_low:.3f}, {self.srcc_high:.3f}], "
                f"PLCC {self.plcc:.3f} [{self.plcc_low:.3f}, {self.plcc_high:.3f}] "
                f"({self.level:.0%} interval)")


def _quantile(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each value's mid-rank in the weighted population (ties share their mid-rank)."""
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_weights = values[order], weights[order]
    cumulative = np.cumsum(sorted_weights)
    mid = cumulative - sorted_weights / 2
    # ties: the mean mid-rank of their group
    _, start, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    group = np.repeat(np.arange(start.size), counts)
    group_weight = np.bincount(group, sorted_weights)
    group_mid = np.bincount(group, sorted_weights * mid) / np.where(group_weight > 0,
                                                                    group_weight, 1)
    ranks = np.empty_like(mid)
    ranks[order] = group_mid[group]
    return ranks


def weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    w = w / w.sum()
    dx, dy = x - w @ x, y - w @ y
    denominator = np.sqrt((w @ dx**2) * (w @ dy**2))
    return float(w @ (dx * dy) / denominator) if denominator > 0 else 0.0


def weighted_spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return weighted_pearson(weighted_ranks(x, w), weighted_ranks(y, w), w)


def reliability(mos: np.ndarray, noise: np.ndarray, w: np.ndarray) -> float:
    """The share of the labels' (weighted) variance that is not their own noise, floored at
    ``MIN_RELIABILITY``; the mean noise is over the labels whose noise is known (NaN: a label
    of one rater), and with none known the labels are taken as exact (1)."""
    w = w / w.sum()
    variance = float(w @ (mos - w @ mos) ** 2)
    known = ~np.isnan(noise)
    if variance <= 0 or not known.any() or w[known].sum() <= 0:
        return 1.0
    mean_noise = float(w[known] @ noise[known]) / float(w[known].sum())
    return float(np.clip(1.0 - mean_noise / variance, MIN_RELIABILITY, 1.0))


@dataclass
class FoldPredictions:
    """What the estimate needs per labelled image: its student score, its MOS, the line-only
    calibration on every label (in sample), and out-of-fold predictions of the whole procedure
    and of the line-only procedure; ``noise``: each label's error variance against a large
    panel (None: exact labels)."""

    mos: np.ndarray
    line: np.ndarray
    full: np.ndarray
    line_oof: np.ndarray
    noise: np.ndarray | None = None


def cross_validate(
    student_scores: np.ndarray,
    features: np.ndarray,
    scalers: Sequence[FeatureScaler],
    mos: np.ndarray,
    *,
    correct: bool = True,
    forms: Sequence[str] = ("two-stage", "joint"),
    min_gain_se: float = MIN_GAIN_SE,
    folds: int = FOLDS,
    seed: int = 0,
    pool: PoolSample | None = None,
    fit_scores: np.ndarray | None = None,
    label_noise: np.ndarray | None = None,
) -> FoldPredictions:
    scores = np.asarray(student_scores, dtype=np.float64)
    fit = scores if fit_scores is None else np.asarray(fit_scores, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    n = mos.size
    # many labels: fewer, larger folds (the pooling loss they add cancels in the bracket)
    folds = folds if n <= MANY_LABELS else max(2, folds // 2)
    fold_of = np.random.default_rng(seed).permutation(n) % min(folds, n)
    full, line_oof = np.empty(n), np.empty(n)
    for k in range(int(fold_of.max()) + 1):
        held, train = fold_of == k, fold_of != k
        bases = [RidgeBasis.fit(features[train], scaler) for scaler in scalers]
        fitted = calibrate_prior(fit[train], bases, mos[train], correct=correct, forms=forms,
                                 min_gain_se=min_gain_se, pool=pool)
        full[held] = fitted(scores[held], features[held])
        line_only = calibrate_prior(fit[train], bases, mos[train], correct=False)
        line_oof[held] = line_only(scores[held], features[held])
    line_all = calibrate_prior(scores, [], mos, correct=False)
    noise = None if label_noise is None else np.asarray(label_noise, dtype=np.float64)
    return FoldPredictions(mos, line_all(scores, features), full, line_oof, noise)


def _statistic(p: FoldPredictions, idx: np.ndarray, w: np.ndarray
               ) -> tuple[float, float, float]:
    """(SRCC, PLCC) of the estimate against the labels as they are, and the labels'
    reliability (1 for exact labels)."""
    mos, wi = p.mos[idx], w[idx]
    srcc = (weighted_spearman(p.line[idx], mos, wi) + weighted_spearman(p.full[idx], mos, wi)
            - weighted_spearman(p.line_oof[idx], mos, wi))
    plcc = (weighted_pearson(p.line[idx], mos, wi) + weighted_pearson(p.full[idx], mos, wi)
            - weighted_pearson(p.line_oof[idx], mos, wi))
    rel = 1.0 if p.noise is None else reliability(mos, p.noise[idx], wi)
    return float(srcc), float(plcc), rel


def _disattenuated(low: float, high: float, rel_low: float, rel_high: float
                   ) -> tuple[float, float]:
    """An interval of a correlation against noisy labels and one of the labels' reliability,
    as an interval of the correlation against exact ones: each end divided by the root of the
    reliability that moves it farthest (Winne & Belfry's conservative interval for a
    correlation corrected for attenuation)."""
    def widest(value: float, outward: bool) -> float:
        rel = rel_low if (value >= 0) == outward else rel_high
        return value / np.sqrt(rel)
    return (float(max(widest(low, outward=False), -1.0)),
            float(min(widest(high, outward=True), 1.0)))


def estimate_from_folds(p: FoldPredictions, weights: np.ndarray | None = None, *,
                        level: float = LEVEL, bootstrap: int = BOOTSTRAP,
                        seed: int = 0, target: str = "new") -> AccuracyEstimate:
    n = p.mos.size
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    srcc, plcc, rel = _statistic(p, np.arange(n), w)
    rng = np.random.default_rng(seed)
    draws = np.array([_statistic(p, rng.integers(0, n, n), w) for _ in range(bootstrap)])
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    # centre the interval on the estimate (the bootstrap's spread, not its bias, is trusted:
    # a resample repeats images, which flatters a rank correlation)
    shift = np.array([srcc, plcc, rel]) - np.nanmedian(draws, axis=0)
    low, high = low + shift, high + shift
    rel_low, rel_high = (float(np.clip(low[2], MIN_RELIABILITY, 1.0)),
                         float(np.clip(high[2], MIN_RELIABILITY, 1.0)))
    srcc_interval = _disattenuated(low[0], high[0], rel_low, rel_high)
    plcc_interval = _disattenuated(low[1], high[1], rel_low, rel_high)
    root = np.sqrt(rel)
    return AccuracyEstimate(float(np.clip(srcc / root, -1, 1)), *srcc_interval,
                            float(np.clip(plcc / root, -1, 1)), *plcc_interval, n, level,
                            weighted=weights is not None,
                            reliability=None if p.noise is None else rel, target=target)


def estimable(mos: np.ndarray) -> bool:
    """Whether labels with this MOS give an estimate at all (enough of them, not all equal)."""
    return bool(np.size(mos) >= MIN_LABELS_FOR_ESTIMATE and np.ptp(mos) > 0)


def estimate_accuracy(
    student_scores: np.ndarray,
    features: np.ndarray,
    scalers: Sequence[FeatureScaler],
    mos: np.ndarray,
    *,
    correct: bool = True,
    forms: Sequence[str] = ("two-stage", "joint"),
    weights: np.ndarray | None = None,
    min_gain_se: float = MIN_GAIN_SE,
    folds: int = FOLDS,
    seed: int = 0,
    pool: PoolSample | None = None,
    fit_scores: np.ndarray | None = None,
    label_noise: np.ndarray | None = None,
    target: str = "new",
) -> AccuracyEstimate | None:
    """The accuracy ``calibrate_prior`` (with these arguments) reaches on new images, estimated
    from its labelled images alone (see the module docstring); None below
    ``MIN_LABELS_FOR_ESTIMATE`` labels. ``student_scores``: the labelled images' student scores
    as new images would get them (out of sample), not the in-sample scores the calibration
    itself was fitted on; those go in ``fit_scores`` (default: ``student_scores``), on which
    every fold refits the calibration as the model's was. ``pool``: the sample of the pool the
    calibration's few-label rule read (``calibrate_prior``), as it read it. ``label_noise``:
    each label's error variance against a large panel's MOS (None: exact labels). ``target``:
    what the student scores speak for ("pool": the pool's images, distilled on like the
    labelled ones; "new": images the student never saw)."""
    mos = np.asarray(mos, dtype=np.float64)
    if not estimable(mos):
        return None
    folds_ = cross_validate(student_scores, np.asarray(features), scalers, mos,
                            correct=correct, forms=forms, min_gain_se=min_gain_se,
                            folds=folds, seed=seed, pool=pool, fit_scores=fit_scores,
                            label_noise=label_noise)
    return estimate_from_folds(folds_, weights, seed=seed, target=target)


#: the learning curve: subsets of these shares of the labels, each drawn this many times
CURVE_SHARES = (0.5, 0.75)
CURVE_REPEATS = 4
#: more labels "stop paying" where N more are expected to add less than this SRCC
WORTHWHILE_GAIN = 0.005


@dataclass
class LearningCurve:
    """What the next ``next_labels`` labels are expected to add, read off the estimate's
    learning curve over the labels so far: the correction's gain over the line at subsets of
    the labels, fitted as ``gain(m) = g∞ − b / √m`` (the inverse power law of learning curves,
    its exponent fixed at ½ so that three points fit it), and how much the estimate's interval
    narrows (its width goes as 1 / √labels)."""

    n_labels: int
    next_labels: int
    sizes: list[int]
    gains: list[float]          # the correction's mean gain at each size (SRCC)
    expected_gain: float        # SRCC the next labels add, and its 90 % interval
    gain_low: float
    gain_high: float
    width: float                # the estimate's interval width now, and after the next labels
    next_width: float
    enough_at: int | None       # labels past which N more add under WORTHWHILE_GAIN
    measurable: bool = True     # False where half the labels could not earn a correction

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        narrows = (f"the interval narrows from ±{self.width / 2:.2f} to about "
                   f"±{self.next_width / 2:.2f}")
        if not self.measurable:
            return (f"the next {self.next_labels} labels: {narrows}; what they add to the model "
                    f"cannot be read off {self.n_labels} labels yet (the curve needs half of them "
                    "to earn a correction of the student on their own)")
        stop = ("" if self.enough_at is None else
                f"; past about {self.enough_at} labels, {self.next_labels} more add less than "
                f"{WORTHWHILE_GAIN:+.3f}")
        return (f"the next {self.next_labels} labels: SRCC {self.expected_gain:+.3f} "
                f"[{self.gain_low:+.3f}, {self.gain_high:+.3f}] expected (learning curve over "
                f"{', '.join(map(str, self.sizes))} labels), {narrows}{stop}")


def _gain(p: FoldPredictions, w: np.ndarray) -> float:
    """The correction's gain over the line on these folds (the estimate's bracket), corrected
    for the labels' noise like the estimate."""
    gain = weighted_spearman(p.full, p.mos, w) - weighted_spearman(p.line_oof, p.mos, w)
    if p.noise is not None:
        gain /= np.sqrt(reliability(p.mos, p.noise, w))
    return float(gain)


def _fit_curve(sizes: np.ndarray, gains: np.ndarray) -> tuple[float, float]:
    """``(g∞, b)`` of ``gain = g∞ − b / √m`` by least squares."""
    design = np.column_stack([np.ones(sizes.size), -1 / np.sqrt(sizes)])
    coef, *_ = np.linalg.lstsq(design, gains, rcond=None)
    return float(coef[0]), float(coef[1])


def learning_curve(
    student_scores: np.ndarray,
    features: np.ndarray,
    scalers: Sequence[FeatureScaler],
    mos: np.ndarray,
    estimate: AccuracyEstimate,
    next_labels: int,
    *,
    weights: np.ndarray | None = None,
    label_noise: np.ndarray | None = None,
    seed: int = 0,
    **calibration: object,
) -> LearningCurve:
    """The estimate's learning curve over random subsets of the labels (``CURVE_SHARES`` of
    them, ``CURVE_REPEATS`` draws each, every one cross-validated like the estimate itself, with
    the same ``calibration`` arguments as ``cross_validate``) and what ``next_labels`` more are
    expected to add. Read on labels chosen on purpose, the subsets keep their weights."""
    mos = np.asarray(mos, dtype=np.float64)
    n = mos.size
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    noise = None if label_noise is None else np.asarray(label_noise, dtype=np.float64)
    width = estimate.srcc_high - estimate.srcc_low
    next_width = width * float(np.sqrt(n / (n + next_labels)))
    sizes = [int(round(n * share)) for share in CURVE_SHARES] + [n]
    from leafiqa.calibration.prior import MIN_LABELS_FOR_CORRECTION

    if sizes[0] < MIN_LABELS_FOR_CORRECTION:
        return LearningCurve(n, next_labels, sizes, [], 0.0, 0.0, 0.0, width, next_width, None,
                             measurable=False)
    rng = np.random.default_rng(seed)
    draws: list[tuple[int, float]] = []
    for size in sizes:
        for _ in range(1 if size == n else CURVE_REPEATS):
            pick = np.sort(rng.choice(n, size, replace=False))
            folds = cross_validate(student_scores[pick], features[pick], scalers, mos[pick],
                                   seed=seed, label_noise=None if noise is None else noise[pick],
                                   **calibration)  # type: ignore[arg-type]
            draws.append((size, _gain(folds, w[pick])))
    m = np.array([d[0] for d in draws], dtype=np.float64)
    g = np.array([d[1] for d in draws])

    def added(ms: np.ndarray, gs: np.ndarray) -> float:
        _, b = _fit_curve(ms, gs)
        return max(b, 0.0) * (1 / np.sqrt(n) - 1 / np.sqrt(n + next_labels))

    resampled = [added(m[pick], g[pick]) for pick in
                 (rng.integers(0, m.size, m.size) for _ in range(BOOTSTRAP // 5))]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    _, b = _fit_curve(m, g)
    enough_at = None
    if b > 0:  # marginal gain b/2 · m^(-3/2) per label, times next_labels
        enough_at = int(np.ceil((b * next_labels / (2 * WORTHWHILE_GAIN)) ** (2 / 3)))
    return LearningCurve(n, next_labels, sizes,
                         [float(np.mean(g[m == s])) for s in sizes], added(m, g), float(low),
                         float(high), width, next_width, enough_at)
