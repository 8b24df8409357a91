"""Ridge regression on frozen features with the penalty chosen by exact leave-one-out error.

Used three times: as the student's closed-form head (features → the teacher's log-odds,
``distill.ridge_head``), as the linear-probe baseline (features → MOS), and inside calibration,
where a ridge on the features corrects what the distilled student's mapped score gets wrong on
the labelled images. There the penalty grid includes infinity — "no correction" — so with a
handful of labels the correction switches itself off unless the labels themselves say it helps.
It lives with the student, the earliest stage that solves it: calibration imports the student,
never the reverse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHAS = np.logspace(-1, 6, 29)


@dataclass
class FeatureScaler:
    """Per-feature standardisation; fitted on every training image (labels are not needed).

    With ``blocks`` (the sizes of consecutive groups of features: each level's means, each
    level's standard deviations, per input size) every block gets an equal share of the ridge
    prior: its features are scaled by 1/√(block size / mean block size) after standardising, so
    the 1,280 channels of the head convolution count as much as the 24 of the first stage, not
    53 times more. ``std`` is the divisor: the feature's standard deviation over that scale."""

    mean: np.ndarray
    std: np.ndarray
    prior: str = "features"  # every feature an equal share; "blocks": every block

    @classmethod
    def fit(cls, features: np.ndarray, blocks: Sequence[int] | None = None) -> FeatureScaler:
        x = np.asarray(features, dtype=np.float64)
        std = x.std(axis=0) + 1e-6
        if blocks is None:
            return cls(x.mean(axis=0), std)
        return cls(x.mean(axis=0), std / block_scales(blocks, x.shape[1]), "blocks")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.std


def feature_priors(features: np.ndarray, blocks: Sequence[int] | None) -> list[FeatureScaler]:
    """The feature priors a ridge may be fitted under, the default first: every block of
    features an equal share (when the layout is known), then every feature an equal share."""
    per_feature = FeatureScaler.fit(features)
    return ([FeatureScaler.fit(features, blocks)] if blocks else []) + [per_feature]


def block_scales(blocks: Sequence[int], n_features: int) -> np.ndarray:
    """Per-feature scales giving each block the same total prior variance under a ridge."""
    sizes = np.asarray(blocks, dtype=np.int64)
    if sizes.sum() != n_features or (sizes <= 0).any():
        raise ValueError(f"feature blocks {list(blocks)} do not cover {n_features} features")
    per_feature = np.repeat(sizes, sizes).astype(np.float64)
    return 1.0 / np.sqrt(per_feature / sizes.mean())


@dataclass
class RidgeFit:
    """``y ≈ features @ coef + intercept`` (coef in the features' own units)."""

    coef: np.ndarray
    intercept: float
    alpha: float  # inf: the features are not used, the fit is the targets' mean
    loo_error: float  # mean squared leave-one-out error at ``alpha``
    loo_predictions: np.ndarray  # each training target predicted without itself

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.coef + self.intercept


@dataclass
class RidgeBasis:
    """What a leave-one-out ridge needs that does not depend on the targets: the images'
    standardised, centred (and weighted) features and the eigendecomposition of their n×n Gram
    matrix (far cheaper than an SVD when features outnumber images — 7,104 pyramid features,
    ≤ 2,386 images). Computed once per set of images, shared by every fit on them.

    With ``weights`` (e.g. judgment reliabilities) it is weighted least squares: each image's
    row and target are scaled by √w after centring on the weighted means."""

    scaler: FeatureScaler
    centre: np.ndarray  # the (weighted) mean of the standardised features
    weights: np.ndarray  # normalised to mean 1
    rows: np.ndarray  # √w · (standardised − centre)
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, scaler: FeatureScaler | None = None,
            weights: np.ndarray | None = None) -> RidgeBasis:
        scaler = scaler or FeatureScaler.fit(features)
        xs = scaler(features)
        w = np.ones(xs.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        w = w / w.mean()
        centre = (w[:, None] * xs).sum(axis=0) / w.sum()
        rows = np.sqrt(w)[:, None] * (xs - centre)
        eigenvalues, eigenvectors = np.linalg.eigh(rows @ rows.T)
        return cls(scaler, centre, w, rows, np.clip(eigenvalues, 0.0, None), eigenvectors)

    def feature_coef(self, dual: np.ndarray) -> np.ndarray:
        """A ridge's coefficients in the features' own units from its dual coefficients over
        the rows: ((x − mean)/std − centre) @ v = x @ (v/std) + const."""
        return (self.rows.T @ dual) / self.scaler.std

    def centre_value(self, coef: np.ndarray) -> float:
        """``features @ coef`` at the basis's (weighted) centre: the const above, which the
        intercept takes away."""
        return float((self.scaler.mean + self.centre * self.scaler.std) @ coef)


def fit_ridge_loo(
    basis: RidgeBasis,
    targets: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    allow_none: bool = False,
) -> RidgeFit:
    """Ridge on ``basis``'s images with the penalty picked by exact (weighted) leave-one-out
    error; ``allow_none`` adds α = ∞ (predict the targets' mean) to the grid."""
    y = np.asarray(targets, dtype=np.float64)
    u, s2, w = basis.eigenvectors, basis.eigenvalues, basis.weights
    y_mean = float((w * y).sum() / w.sum())
    root_w = np.sqrt(w)
    centred = root_w * (y - y_mean)
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    uty = u.T @ centred
    intercept_leverage = w / w.sum()
    # leave-one-out residuals of the √w-scaled problem; their mean square is the weighted error
    # (images of weight 0 add nothing to it and get no leave-one-out prediction)
    best_alpha = np.inf
    best_residual = centred / np.clip(1.0 - intercept_leverage, 1e-6, None)
    best_error = float(np.mean(best_residual**2)) if allow_none else np.inf
    for alpha in alphas:
        shrink = s2 / (s2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2 * shrink).sum(axis=1) + intercept_leverage
        residual = (centred - fitted) / np.clip(1.0 - leverage, 1e-6, None)
        error = float(np.mean(residual**2))
        if error < best_error:
            best_alpha, best_error, best_residual = float(alpha), error, residual
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_predictions = np.where(w > 0, y - best_residual / root_w, np.nan)
    coef = (np.zeros(basis.rows.shape[1]) if np.isinf(best_alpha)
            else basis.feature_coef(u @ (uty / (s2 + best_alpha))))
    intercept = y_mean - basis.centre_value(coef)
    return RidgeFit(coef, intercept, best_alpha, best_error, loo_predictions)


@dataclass
class CovariateRidgeFit:
    """``y ≈ covariate_coef · covariate + ridge(features)``: a ridge on the features beside one
    unpenalised covariate (and the intercept), fitted jointly; ``ridge`` carries the intercept."""

    covariate_coef: float
    ridge: RidgeFit

    def __call__(self, covariate: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self.covariate_coef * np.asarray(covariate, dtype=np.float64) + self.ridge(features)


def fit_ridge_loo_covariate(
    basis: RidgeBasis,
    targets: np.ndarray,
    covariate: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    allow_none: bool = True,
) -> CovariateRidgeFit | None:
    """Ridge on ``basis``'s images with ``covariate`` unpenalised, the penalty picked by exact
    leave-one-out error (``allow_none``: α = ∞, the covariate's line alone, is on the grid).
    Reuses the basis's eigendecomposition: an unpenalised covariate is the limit of a feature
    with infinite prior variance, a rank-one term in the Gram matrix handled by Sherman–Morrison,
    so the whole path costs O(n²) per α. None when the covariate is constant over the images."""
    y = np.asarray(targets, dtype=np.float64)
    z = np.asarray(covariate, dtype=np.float64)
    u, s2, w = basis.eigenvectors, basis.eigenvalues, basis.weights
    root_w = np.sqrt(w)
    y_mean, z_mean = float((w * y).sum() / w.sum()), float((w * z).sum() / w.sum())
    yc, zc = root_w * (y - y_mean), root_w * (z - z_mean)
    if float(zc @ zc) < 1e-12 * max(float(yc @ yc), 1e-12):
        return None
    intercept_leverage = w / w.sum()
    uty, utz = u.T @ yc, u.T @ zc
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    # α = ∞: the covariate's line alone (B → (I − ẑẑ')/α, so α·B is that projection)
    line_residual = yc - zc * (zc @ yc) / (zc @ zc)
    line_diag = 1.0 - zc**2 / (zc @ zc) - intercept_leverage
    loo = line_residual / np.clip(line_diag, 1e-6, None)
    best = (float(np.mean(loo**2)) if allow_none else np.inf, np.inf, np.zeros_like(yc), loo)
    for alpha in alphas:
        inverse = 1.0 / (s2 + alpha)  # (K + αI)⁻¹ = U diag(1/(λ+α)) U'
        p, q = u @ (inverse * utz), u @ (inverse * uty)
        dual = q - p * (zc @ q) / (zc @ p)  # the limit of (K + c²zz' + αI)⁻¹ y as c → ∞
        diag = (u**2 @ inverse) - p**2 / (zc @ p)
        loo = alpha * dual / np.clip(alpha * diag - intercept_leverage, 1e-6, None)
        error = float(np.mean(loo**2))
        if error < best[0]:
            best = (error, float(alpha), dual, loo)
    error, alpha, dual, loo = best
    coef = np.zeros(basis.rows.shape[1]) if np.isinf(alpha) else basis.feature_coef(dual)
    # given the features' part, the covariate's coefficient is its least-squares slope
    fitted_ridge = basis.rows @ (coef * basis.scaler.std)
    covariate_coef = float(zc @ (yc - fitted_ridge) / (zc @ zc))
    intercept = y_mean - covariate_coef * z_mean - basis.centre_value(coef)
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_predictions = np.where(w > 0, y - loo / root_w, np.nan)
    return CovariateRidgeFit(covariate_coef,
                             RidgeFit(coef, intercept, alpha, error, loo_predictions))


def fit_ridge(features: np.ndarray, targets: np.ndarray, alphas: np.ndarray | None = None
              ) -> RidgeFit:
    """The linear-probe baseline: features → targets, penalty by leave-one-out."""
    return fit_ridge_loo(RidgeBasis.fit(features), targets, alphas)
