"""How far a few raters' MOS is from what a large panel would say.

The ratings of the kept raters are read with the additive subject model of ITU-T P.913 (without
its per-rater inconsistency): ``vote[image, rater] = quality[image] + offset[rater] + error``.
A rater's offset is the same on every image they rated, so it moves no image against another;
the error is what a larger panel would average away. Its variance, pooled over every vote
(residual sum of squares over its degrees of freedom, as in a two-way ANOVA), divided by how
many kept raters rated an image, is that image's MOS error variance. With every rater rating
every image, ``1 − mean(error variance) / variance(MOS)`` is the classic ICC(3, k) — the
reliability of a k-rater mean — which the accuracy estimate corrects its correlations for
(``calibration.estimate``)."""

from __future__ import annotations

import warnings

import numpy as np

#: alternating-means sweeps of the additive model (it converges in a few on complete designs)
SWEEPS = 50


def label_noise(per_rater: np.ndarray) -> np.ndarray:
    """Each image's MOS error variance (the plain mean of its raters' votes against a large
    panel's mean), from ``per_rater``: images × kept raters, each rater's vote (repeats averaged),
    NaN where a rater did not rate an image. NaN for an image no rater rated; with too few
    votes to tell the error from the offsets (fewer than two raters sharing an image), NaN
    everywhere."""
    votes = np.asarray(per_rater, dtype=np.float64)
    seen = ~np.isnan(votes)
    counts = seen.sum(axis=1)
    degrees = int(seen.sum()) - int((counts > 0).sum()) - int(seen.any(axis=0).sum()) + 1
    if degrees <= 0 or not (counts >= 2).any():
        return np.full(votes.shape[0], np.nan)
    residual = _additive_residuals(votes, seen)
    error_variance = float(np.nansum(residual**2)) / degrees
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, error_variance / counts, np.nan)


def _additive_residuals(votes: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Residuals of ``quality[image] + offset[rater]`` fitted to the observed votes by
    alternating means (least squares on an incomplete design)."""
    offsets = np.zeros(votes.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows or columns
        for _ in range(SWEEPS):
            quality = np.nanmean(votes - offsets, axis=1)
            updated = np.nanmean(votes - quality[:, None], axis=0)
            updated = np.where(np.isnan(updated), 0.0, updated)
            updated -= updated.mean()
            if np.allclose(updated, offsets, atol=1e-10):
                offsets = updated
                break
            offsets = updated
        quality = np.nanmean(votes - offsets, axis=1)
    return np.where(seen, votes - quality[:, None] - offsets[None, :], np.nan)
