"""Calibration with the distilled student as a prior and the labels as its correction.

    MOS(x) ≈ m(s(x)) + r(x)

``s`` is the distilled student's score, ``m`` the monotonic map of it onto the MOS scale (the
4-parameter logistic, linear below 8 labels; ``mapping.fit_score_map``) fitted on the labelled
images, and ``r`` a ridge regression on the frozen features fitted to what ``m(s)`` gets wrong
on those images. The ridge penalty is chosen by exact leave-one-out error over a grid that
includes ∞ — no correction at all — so the balance between the teacher's perception and the
labels comes from the labels themselves: with a handful of labels the correction stays off
(LEAF is the teacher's perception on the MOS scale), with many it takes over where the student
is wrong. Leave-one-out can only pick a correction that predicts held-out labels better than
none, so the calibrated student does not fall below its own prior on the labelled data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leafiqa.calibration.mapping import ScoreMap, fit_score_map
from leafiqa.calibration.ridge import RidgeBasis, RidgeFit, fit_ridge_loo

#: corrections need a few labels to be judged by leave-one-out at all
MIN_LABELS_FOR_CORRECTION = 8


@dataclass
class PriorCalibration:
    """``m(s) + r(features)``; ``correction`` is None when the labels did not ask for one."""

    score_map: ScoreMap
    correction: RidgeFit | None = None

    @property
    def correction_alpha(self) -> float:
        return float("inf") if self.correction is None else self.correction.alpha

    def __call__(self, student_scores: np.ndarray, features: np.ndarray) -> np.ndarray:
        mapped = self.score_map(student_scores)
        if self.correction is None:
            return mapped
        return mapped + self.correction(features)


def calibrate_prior(
    student_scores: np.ndarray,
    basis: RidgeBasis,
    mos: np.ndarray,
    *,
    correct: bool = True,
) -> PriorCalibration:
    """Fit ``m`` and (when ``correct`` and the labels support it) ``r`` on the labelled images,
    whose features ``basis`` holds (standardise them with a scaler fitted on every training
    image, so a few labels do not decide the features' scale)."""
    scores = np.asarray(student_scores, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    score_map = fit_score_map(scores, mos)
    if not correct or mos.size < MIN_LABELS_FOR_CORRECTION:
        return PriorCalibration(score_map)
    residual = mos - score_map(scores)
    fit = fit_ridge_loo(basis, residual, allow_none=True)
    return PriorCalibration(score_map, None if np.isinf(fit.alpha) else fit)
