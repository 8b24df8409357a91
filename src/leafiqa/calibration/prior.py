"""Calibration with the distilled student as a prior and the labels as its correction.

    MOS(x) ≈ g(a + b·s(x) + r(x))

``s`` is the distilled student's score; ``a + b·s`` a line onto the MOS of the labelled images
(slope kept positive: a map must not reverse the student's order); ``r`` a ridge regression on
the frozen features for what the line gets wrong on those images. So the balance between the
teacher's perception and the labels comes from the labels themselves: exact leave-one-out error
picks, among

- the line alone (no correction: α = ∞ is on every penalty grid),
- *two-stage*: the least-squares line first, then ``r`` on its residuals,
- *joint*: ``b`` refitted together with ``r`` (the student an unpenalised covariate of the
  ridge, so many labels can lean on the features where the student's direction is off; from
  ``MIN_LABELS_FOR_JOINT`` labels on),

each under each feature prior it is given (every block of features an equal share of the prior,
or every feature — ``RidgeBasis`` per ``FeatureScaler``), the one that predicts held-out labels
best. The joint form's error is exact; the two-stage form's holds the line (fitted on every
label) fixed and is exact for the ridge alone, which flatters it slightly, so the choice leans
towards the two-stage form (a linear-smoother formula would count the line's refit too). With
a handful of labels the correction stays off (LEAF is the teacher's perception on the
MOS scale); with many it takes over where the student is wrong. Below ``CLEAR_GAIN_BELOW``
labels a correction must also leave the student's ranking of the pool mostly as it is
(``MIN_POOL_AGREEMENT``, measured on a sample of the pool's images): a few labels may refine
the teacher's perception, not overturn it. ``g`` is the 4-parameter
logistic of IQA practice, fitted on the leave-one-out predictions, kept only when it pays for its
parameters (Akaike's criterion against the identity); it bends the line where MOS saturates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from leafiqa.calibration.mapping import ScoreMap, fit_linear, fit_score_map
from leafiqa.student.ridge import (
    DEFAULT_ALPHAS,
    FeatureSource,
    RidgeBasis,
    RidgeFit,
    fit_ridge_loo,
    fit_ridge_loo_covariate,
)

#: corrections need a few labels to be judged by leave-one-out at all (with fewer, a correction
#: picked by leave-one-out costs the ranking as often as it helps: docs/results/selection.md)
MIN_LABELS_FOR_CORRECTION = 16
#: below this many labels the correction must beat the line by ``min_gain_se`` standard errors
CLEAR_GAIN_BELOW = 30
#: the joint form (the student's slope refitted beside a ridge over thousands of features) is
#: weighed only from this many labels on: with fewer, a joint correction that passes the
#: one-standard-error rule mostly lowers the test SRCC (the features take over the student's
#: ranking) where a two-stage one that passes raises it (``scripts/few_label_forms.py``;
#: docs/results/selection.md)
MIN_LABELS_FOR_JOINT = 30
#: the default ``min_gain_se`` (``calibration.min_gain_se``)
MIN_GAIN_SE = 1.0
#: below ``CLEAR_GAIN_BELOW`` labels, the Spearman correlation between the student's ranking of
#: the pool and the corrected one must be at least this: a few labels can pass the
#: one-standard-error rule with a correction that reorders much of the pool, and such a
#: correction mostly costs test SRCC. The threshold refuses those and keeps the corrections
#: that move the ranking a little (``scripts/few_label_forms.py`` weighs every form on both
#: data sets; docs/results/selection.md)
MIN_POOL_AGREEMENT = 0.9
#: how many of the pool's images that agreement is measured on (a fixed random sample)
POOL_SAMPLE_SIZE = 512
#: the outer logistic is only weighed against the identity from this many labels on
MIN_LABELS_FOR_LOGISTIC = 30
#: its width is at least this fraction of the predictions' spread: a bend, never a step
LOGISTIC_MIN_WIDTH = 0.2


@dataclass(frozen=True)
class PoolSample:
    """A random sample of the pool's images (labelled or not): their student scores and
    features, on which a few labels' correction must keep the student's ranking (a Spearman
    correlation of at least ``min_agreement``; 0 turns the rule off)."""

    scores: np.ndarray
    features: np.ndarray
    min_agreement: float = MIN_POOL_AGREEMENT


def sample_pool_rows(n_pool: int, size: int | None = None, seed: int = 0) -> np.ndarray:
    """The positions (sorted) of the pool's images ``PoolSample`` holds: all of a small pool,
    else a fixed random ``size`` (default ``POOL_SAMPLE_SIZE``) of them — a bounded sample
    whatever the pool's size."""
    size = POOL_SAMPLE_SIZE if size is None else size
    if n_pool <= size:
        return np.arange(n_pool)
    return np.sort(np.random.default_rng(seed).choice(n_pool, size, replace=False))


@dataclass
class PriorCalibration:
    """``g(line(s) + r(features))``; ``correction`` is None when the labels did not ask for one,
    ``score_map`` (g ∘ line) is the line alone when the logistic did not pay."""

    line: ScoreMap
    correction: RidgeFit | None = None
    output_map: ScoreMap = field(default_factory=ScoreMap)
    form: str = "line"  # what leave-one-out chose: line (no correction), two-stage or joint
    prior: str = ""  # the correction's feature prior (FeatureScaler.prior)
    reason: str = ""  # why the line alone was kept (empty with a correction)

    @property
    def correction_alpha(self) -> float:
        return float("inf") if self.correction is None else self.correction.alpha

    @property
    def score_map(self) -> ScoreMap:
        """The whole map from student score to MOS when there is no correction (what a model
        file stores as its calibration; with a correction the network adds it before ``g``)."""
        return compose(self.output_map, self.line)

    def __call__(self, student_scores: np.ndarray, features: np.ndarray) -> np.ndarray:
        inner = self.line(student_scores)
        if self.correction is not None:
            inner = inner + self.correction(features)
        return self.output_map(inner)

    def predict_source(self, student_scores: np.ndarray, source: FeatureSource) -> np.ndarray:
        """``self(student_scores, features)`` with the features read from ``source`` chunk by
        chunk (the same rows, in order): a pool of any size."""
        inner = self.line(student_scores)
        if self.correction is not None:
            inner = inner + source.map(self.correction)
        return self.output_map(inner)


def compose(outer: ScoreMap, line: ScoreMap) -> ScoreMap:
    """``outer ∘ line`` as one ScoreMap (a logistic of a line is a logistic)."""
    if outer.kind == "none":
        return line
    if line.kind == "none":
        return outer
    slope, intercept = line.params
    if slope == 0:  # a flat line (constant student scores): the map is one value
        return ScoreMap("linear", [0.0, float(outer(np.array([intercept]))[0])], line.n_labels)
    if outer.kind == "linear":
        a, b = outer.params
        return ScoreMap("linear", [a * slope, a * intercept + b], line.n_labels)
    b1, b2, b3, b4 = outer.params
    # logistic((slope·s + intercept − b3)/b4) = logistic((s − (b3 − intercept)/slope)/(b4/slope))
    return ScoreMap("logistic4", [b1, b2, (b3 - intercept) / slope, b4 / slope], line.n_labels)


def logistic_pays(predictions: np.ndarray, mos: np.ndarray) -> ScoreMap:
    """The 4-parameter logistic from ``predictions`` to ``mos`` when there are enough labels and
    Akaike's criterion prefers it to the identity, else no map."""
    if mos.size < MIN_LABELS_FOR_LOGISTIC:
        return ScoreMap()
    fitted = fit_score_map(predictions, mos, min_width=LOGISTIC_MIN_WIDTH)
    if fitted.kind != "logistic4":
        return ScoreMap()
    n = mos.size
    identity_error = float(np.mean((predictions - mos) ** 2))
    logistic_error = float(np.mean((fitted(predictions) - mos) ** 2))
    if n * np.log(max(logistic_error, 1e-12)) + 2 * 4 < n * np.log(max(identity_error, 1e-12)):
        return fitted
    return ScoreMap()


def calibrate_prior(
    student_scores: np.ndarray,
    bases: RidgeBasis | Sequence[RidgeBasis],
    mos: np.ndarray,
    *,
    correct: bool = True,
    forms: Sequence[str] = ("two-stage", "joint"),
    min_gain_se: float = MIN_GAIN_SE,
    pool: PoolSample | None = None,
) -> PriorCalibration:
    """Fit the line, (when ``correct`` and the labels support it) ``r``, and ``g`` on the
    labelled images, whose features each of ``bases`` holds under one feature prior (its
    scaler fitted on every training image, so a few labels do not decide the features'
    scale); leave-one-out picks the form (among ``forms``) and the prior. ``pool``: a sample
    of the pool's images on which a correction from few labels must keep the student's
    ranking (``PoolSample.min_agreement``); without it that rule is not applied."""
    scores = np.asarray(student_scores, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    line = fit_linear(scores, mos) if scores.size else ScoreMap()
    if mos.size < MIN_LABELS_FOR_CORRECTION:
        return PriorCalibration(line, reason=f"fewer than {MIN_LABELS_FOR_CORRECTION} labels")
    mapped = line(scores)
    line_loo = mapped + _loo_line_shift(scores, mos)
    best: tuple[float, PriorCalibration, np.ndarray] = (
        np.inf, PriorCalibration(line, reason="leave-one-out preferred it" if correct
                                 else "no correction asked for"), line_loo)
    priors = [bases] if isinstance(bases, RidgeBasis) else list(bases)
    for basis in priors if correct else []:
        if "two-stage" in forms:
            two_stage = fit_two_stage_loo(basis, scores, mos, mos - mapped)
            if two_stage is not None and two_stage.loo_error < best[0]:
                best = (two_stage.loo_error,
                        PriorCalibration(line, two_stage, form="two-stage",
                                         prior=basis.scaler.prior),
                        two_stage.loo_predictions)
        joint = (fit_ridge_loo_covariate(basis, mos, scores)
                 if "joint" in forms and mos.size >= MIN_LABELS_FOR_JOINT else None)
        if (joint is not None and not np.isinf(joint.ridge.alpha) and joint.covariate_coef > 0
                and joint.ridge.loo_error < best[0]):
            refitted = ScoreMap("linear", [joint.covariate_coef, joint.ridge.intercept],
                                line.n_labels)
            correction = dataclasses.replace(joint.ridge, intercept=0.0)
            best = (joint.ridge.loo_error,
                    PriorCalibration(refitted, correction, form="joint", prior=basis.scaler.prior),
                    joint.ridge.loo_predictions)
    _, calibration, loo = best
    if calibration.correction is not None:
        if not gain_is_clear(mos, loo, line_loo, min_gain_se):
            calibration, loo = PriorCalibration(line, reason=(
                f"the {calibration.form} correction's leave-one-out gain was under "
                f"{min_gain_se:g} standard error, with fewer than {CLEAR_GAIN_BELOW} labels")
            ), line_loo
        elif not keeps_pool_ranking(calibration, pool, mos.size):
            calibration, loo = PriorCalibration(line, reason=(
                f"the {calibration.form} correction would reorder the pool below Spearman "
                f"{pool.min_agreement if pool else MIN_POOL_AGREEMENT:g}, with fewer than "
                f"{CLEAR_GAIN_BELOW} labels")), line_loo
    calibration.output_map = logistic_pays(loo, mos)
    return calibration


def describe_correction(form: str, alpha: float, prior: str, reason: str = "",
                        logistic: bool = False) -> str:
    """The form a calibration kept, in words: the line alone (and why) or the correction with
    its ridge penalty and feature prior; ``logistic``: the outer logistic was kept too."""
    if form in ("line", "", None) or not np.isfinite(alpha):
        kept = "the line alone onto the MOS, no correction" + (f" ({reason})" if reason else "")
    else:
        shape = ("a ridge on the line's residuals" if form == "two-stage"
                 else "the student's slope refitted beside a ridge")
        kept = (f"the {form} correction ({shape}; penalty α {alpha:.3g}, "
                f"{prior or 'features'} prior)")
    return kept + ("; then the 4-parameter logistic" if logistic else "")


def gain_is_clear(mos: np.ndarray, corrected: np.ndarray, line: np.ndarray,
                  min_gain_se: float) -> bool:
    """Whether the correction's leave-one-out predictions beat the line's by more than
    ``min_gain_se`` standard errors of the per-label difference of squared errors, below
    ``CLEAR_GAIN_BELOW`` labels (a few labels choosing among many penalties find a small gain by
    chance; a one-standard-error rule keeps the student's ranking unless they clearly ask to
    change it)."""
    if min_gain_se <= 0 or mos.size >= CLEAR_GAIN_BELOW:
        return True
    gain = (mos - line) ** 2 - (mos - corrected) ** 2
    return float(gain.mean()) > min_gain_se * float(gain.std(ddof=1)) / np.sqrt(gain.size)


def keeps_pool_ranking(calibration: PriorCalibration, pool: PoolSample | None,
                       n_labels: int) -> bool:
    """Whether a correction fitted on ``n_labels`` labels leaves the student's ranking of
    ``pool`` mostly as it is (always true from ``CLEAR_GAIN_BELOW`` labels or without a pool).
    Measured before the outer logistic, which is monotone and not fitted yet."""
    if pool is None or n_labels >= CLEAR_GAIN_BELOW or pool.scores.size < 3 or (
            pool.min_agreement <= 0):
        return True
    corrected = calibration(pool.scores, pool.features)
    agreement = spearmanr(pool.scores, corrected).statistic
    return bool(np.isfinite(agreement) and agreement >= pool.min_agreement)


def _loo_line_shift(scores: np.ndarray, mos: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions of the line minus its in-sample ones (so the logistic is
    judged on held-out predictions even without a correction)."""
    design = np.column_stack([scores, np.ones_like(scores)])
    inverse = np.linalg.pinv(design.T @ design)
    fitted = design @ (inverse @ (design.T @ mos))
    leverage = np.einsum("ij,jk,ik->i", design, inverse, design)  # the hat matrix's diagonal
    residual = mos - fitted
    loo = mos - residual / np.clip(1.0 - leverage, 1e-6, None)
    return loo - fitted


def fit_two_stage_loo(basis: RidgeBasis, scores: np.ndarray, mos: np.ndarray,
                      residuals: np.ndarray) -> RidgeFit | None:
    """The two-stage correction (a ridge on the least-squares line's ``residuals``) with its
    penalty and its leave-one-out error taken with the line refitted too: the whole fit is the
    linear smoother S = P + H − HP (P the line's hat matrix, H the ridge's), so each label's
    held-out residual is ≈ (y − Sy)_i / (1 − S_ii) (close to refitting both by brute force,
    which tests/calibration/test_estimate.py checks). The returned fit's ``loo_predictions``
    are of the MOS itself. None when no finite penalty beats no correction, or with weighted
    bases (where the line is unweighted)."""
    if not np.allclose(basis.weights, 1.0):
        fit = fit_ridge_loo(basis, residuals, allow_none=True)
        if np.isinf(fit.alpha):
            return None
        fit.loo_predictions = mos - residuals + fit.loo_predictions
        return fit
    n = mos.size
    design = np.column_stack([scores, np.ones(n)])
    projector = np.linalg.pinv(design.T @ design) @ design.T  # 2×n: (X'X)⁻¹X'
    line_hat = design @ projector
    u, s2 = basis.eigenvectors, basis.eigenvalues
    ut_r, ut_x = u.T @ residuals, u.T @ design
    # the ridge's intercept (the residuals' mean) adds J/n to H; the residuals have mean 0
    mean_x = design.mean(axis=0)
    best: tuple[float, float, np.ndarray] = (np.inf, np.inf, np.zeros(n))
    for alpha in DEFAULT_ALPHAS:
        shrink = s2 / (s2 + alpha)
        fitted = line_hat @ mos + u @ (shrink * ut_r) + residuals.mean()
        h_diag = (u**2 * shrink).sum(axis=1) + 1.0 / n
        hx = u @ (shrink[:, None] * ut_x) + mean_x[None, :]  # H X
        hp_diag = np.einsum("ij,ji->i", hx, projector)
        s_diag = np.diag(line_hat) + h_diag - hp_diag
        held_out = (mos - fitted) / np.clip(1.0 - s_diag, 1e-6, None)
        error = float(np.mean(held_out**2))
        if error < best[0]:
            best = (error, float(alpha), mos - held_out)
    error, alpha, loo = best
    line_loo = design @ (projector @ mos) + _loo_line_shift(scores, mos)
    line_error = float(np.mean((mos - line_loo) ** 2))
    if np.isinf(alpha) or error >= line_error:
        return None
    fit = fit_ridge_loo(basis, residuals, np.array([alpha]))
    return RidgeFit(fit.coef, fit.intercept, alpha, error, loo)
