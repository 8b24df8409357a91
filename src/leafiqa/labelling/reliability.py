"""How far a few raters' MOS is from what a large panel would say.

The ratings of the kept raters are read with the additive subject model of ITU-T P.913 (without
its per-rater inconsistency): ``vote[image, rater] = quality[image] + offset[rater] + error``.
A rater's offset is the same on every image they rated, so it moves no image against another;
the error is what a larger panel would average away. Each image's MOS error variance is the
variance of its votes about the model (offsets removed; its own sample variance, so that images
differ as their raters disagreed on them) over its number of votes — the square of the familiar
``std / √n`` of a MOS, with the offsets taken out. Its mean over the labels against the MOS's
variance gives their reliability, ``1 − mean(error variance) / variance(MOS)`` (with every rater
on every image, the classic ICC(3, k)), which the accuracy estimate corrects its correlations
for (``calibration.estimate``); being per image, a bootstrap over the labels carries its
uncertainty too."""

from __future__ import annotations

import warnings

import numpy as np

#: alternating-means sweeps of the additive model (it converges in a few on complete designs)
SWEEPS = 50


def label_noise(per_rater: np.ndarray) -> np.ndarray:
    """Each image's MOS error variance (its raters' offset-free mean against a large panel's
    mean), from ``per_rater``: images × kept raters, each rater's vote (repeats averaged), NaN
    where a rater did not rate an image. NaN for an image fewer than two raters rated (one vote
    says nothing of its error)."""
    votes = np.asarray(per_rater, dtype=np.float64)
    seen = ~np.isnan(votes)
    counts = seen.sum(axis=1)
    images, raters = int((counts > 0).sum()), int(seen.any(axis=0).sum())
    degrees = int(seen.sum()) - images - raters + 1
    if degrees <= 0 or not (counts >= 2).any():
        return np.full(votes.shape[0], np.nan)
    residual = _additive_residuals(votes, seen)
    # each image's share of the model's degrees of freedom: its votes less one, less its share
    # of the raters' offsets (so that the images' variances average to the pooled one)
    share = (counts - 1) * degrees / max(int((counts - 1).clip(min=0).sum()), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.nansum(residual**2, axis=1) / share
        return np.where(counts >= 2, variance / counts, np.nan)


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
