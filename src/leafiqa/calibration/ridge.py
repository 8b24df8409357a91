"""Ridge regression on frozen features (the linear-probe baseline)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def fit_ridge(
    features: np.ndarray, targets: np.ndarray, alphas: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Ridge with the penalty picked by exact leave-one-out error (via the SVD), standardised
    features. Returns a predictor."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / std
    y_mean = y.mean()
    # The eigenvectors of the n×n Gram matrix are the left singular vectors of xs: far cheaper
    # than an SVD when features outnumber images (7,104 pyramid features, ≤ 2,386 images).
    eigenvalues, u = np.linalg.eigh(xs @ xs.T)
    s = np.sqrt(np.clip(eigenvalues, 0.0, None))
    uty = u.T @ (y - y_mean)
    alphas = np.logspace(-1, 6, 29) if alphas is None else alphas
    best_alpha, best_error = float(alphas[0]), np.inf
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2 * shrink).sum(axis=1) + 1.0 / len(y)
        residual = (y - y_mean - fitted) / np.clip(1.0 - leverage, 1e-6, None)
        error = float(np.mean(residual**2))
        if error < best_error:
            best_alpha, best_error = float(alpha), error
    coef = xs.T @ (u @ (uty / (s**2 + best_alpha)))

    def predict(new: np.ndarray) -> np.ndarray:
        return ((np.asarray(new, dtype=np.float64) - mean) / std) @ coef + y_mean

    return predict
