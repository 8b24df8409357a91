"""Ridge regression on frozen features with the penalty chosen by exact leave-one-out error.

Used twice: as the linear-probe baseline (features → MOS), and inside calibration, where a
ridge on the features corrects what the distilled student's mapped score gets wrong on the
labelled images. There the penalty grid includes infinity — "no correction" — so with a handful
of labels the correction switches itself off unless the labels themselves say it helps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHAS = np.logspace(-1, 6, 29)


@dataclass
class FeatureScaler:
    """Per-feature standardisation; fitted on every training image (labels are not needed)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> FeatureScaler:
        x = np.asarray(features, dtype=np.float64)
        return cls(x.mean(axis=0), x.std(axis=0) + 1e-6)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.std


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
    standardised features and the eigendecomposition of their n×n Gram matrix (far cheaper than
    an SVD when features outnumber images — 7,104 pyramid features, ≤ 2,386 images). Computed
    once per set of labelled images, shared by every fit on them."""

    scaler: FeatureScaler
    standardised: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, scaler: FeatureScaler | None = None) -> RidgeBasis:
        scaler = scaler or FeatureScaler.fit(features)
        xs = scaler(features)
        eigenvalues, eigenvectors = np.linalg.eigh(xs @ xs.T)
        return cls(scaler, xs, np.clip(eigenvalues, 0.0, None), eigenvectors)


def fit_ridge_loo(
    basis: RidgeBasis,
    targets: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    allow_none: bool = False,
) -> RidgeFit:
    """Ridge on ``basis``'s images with the penalty picked by exact leave-one-out error;
    ``allow_none`` adds α = ∞ (predict the targets' mean) to the grid."""
    y = np.asarray(targets, dtype=np.float64)
    n = y.size
    u, s2 = basis.eigenvectors, basis.eigenvalues
    y_mean = float(y.mean())
    centred = y - y_mean
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    uty = u.T @ centred
    best_alpha = np.inf
    best_loo = y_mean - centred / (n - 1) if n > 1 else y.copy()
    best_error = float(np.mean((y - best_loo) ** 2)) if allow_none else np.inf
    for alpha in alphas:
        shrink = s2 / (s2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2 * shrink).sum(axis=1) + 1.0 / n
        residual = (centred - fitted) / np.clip(1.0 - leverage, 1e-6, None)
        error = float(np.mean(residual**2))
        if error < best_error:
            best_alpha, best_error, best_loo = float(alpha), error, y - residual
    scaler = basis.scaler
    if np.isinf(best_alpha):
        coef = np.zeros(basis.standardised.shape[1])
    else:
        # back to the features' own units: ((x − mean) / std) @ w = x @ (w / std) − …
        coef = (basis.standardised.T @ (u @ (uty / (s2 + best_alpha)))) / scaler.std
    intercept = y_mean - float(scaler.mean @ coef)
    return RidgeFit(coef, intercept, best_alpha, best_error, best_loo)


def fit_ridge(features: np.ndarray, targets: np.ndarray, alphas: np.ndarray | None = None
              ) -> RidgeFit:
    """The linear-probe baseline: features → targets, penalty by leave-one-out."""
    return fit_ridge_loo(RidgeBasis.fit(features), targets, alphas)
