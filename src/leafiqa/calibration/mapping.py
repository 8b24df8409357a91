"""Monotonic maps from student scores onto the MOS scale.

The 4-parameter logistic of VQEG / IQA practice:
    f(s) = (β1 − β2) / (1 + exp(−(s − β3) / |β4|)) + β2,   β1 > β2 (increasing)
fitted with scipy's least squares. With too few labels for four parameters it falls back to a
linear map; with none there is no map (``kind = "none"``) and only rank metrics make sense.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from leafiqa.errors import ModelFileError

MIN_LABELS_FOR_LOGISTIC = 8
#: when the labels' least-squares slope is not positive (a few noisy labels against the
#: student's order), the slope kept, as a fraction of std(MOS)/std(scores): the map then
#: predicts ≈ the MOS mean, as a flat map would, but keeps the student's ranking
MIN_SLOPE_FRACTION = 0.01


def logistic4(s: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    z = np.clip(-(s - b3) / max(abs(b4), 1e-6), -60.0, 60.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


@dataclass
class ScoreMap:
    kind: str = "none"  # none | linear | logistic4
    params: list[float] = field(default_factory=list)
    n_labels: int = 0

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.kind == "none":
            return scores
        if self.kind == "linear":
            slope, intercept = self.params
            return slope * scores + intercept
        if self.kind == "logistic4":
            return logistic4(scores, *self.params)
        raise ModelFileError(f"unknown score map '{self.kind}'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScoreMap:
        return cls(kind=data["kind"], params=[float(p) for p in data["params"]],
                   n_labels=int(data.get("n_labels", 0)))


def _constant(scores: np.ndarray) -> bool:
    # a teacher sure of every labelled image gives equal log-odds up to float noise
    return bool(scores.std() <= 1e-9 * (1.0 + np.abs(scores).mean()))


def fit_linear(scores: np.ndarray, mos: np.ndarray) -> ScoreMap:
    scores, mos = np.asarray(scores, float), np.asarray(mos, float)
    if scores.size < 2 or _constant(scores):
        return ScoreMap("linear", [0.0, float(mos.mean()) if mos.size else 0.0], int(mos.size))
    slope, intercept = np.polyfit(scores, mos, 1)
    # A map onto MOS must neither reverse nor erase the order the student learnt: the labels
    # may scale the teacher's perception, and with too few of them to say which way it goes
    # the student's ranking is still the best guess.
    if slope <= 0:
        slope = MIN_SLOPE_FRACTION * float(mos.std()) / float(scores.std())
        intercept = float(mos.mean()) - slope * float(scores.mean())
    return ScoreMap("linear", [float(slope), float(intercept)], int(mos.size))


def fit_score_map(scores: np.ndarray, mos: np.ndarray, min_width: float = 1e-3) -> ScoreMap:
    """Best monotonic increasing map of ``scores`` onto ``mos`` (see module docstring);
    ``min_width`` bounds the logistic's width |β4| below, as a fraction of the scores' spread
    (a near-step logistic merges many scores into one value, and their ranks with it)."""
    scores, mos = np.asarray(scores, float), np.asarray(mos, float)
    if scores.size == 0:
        return ScoreMap()
    linear = fit_linear(scores, mos)
    if scores.size < MIN_LABELS_FOR_LOGISTIC or _constant(scores):
        return linear
    spread = scores.std()
    initial = [mos.max(), mos.min(), float(np.median(scores)), spread]
    initial[3] = max(initial[3], 2 * min_width * spread)
    bounds = ([mos.min() - 3 * mos.std(), -np.inf, scores.min() - 3 * spread,
               min_width * spread],
              [np.inf, mos.max() + 3 * mos.std(), scores.max() + 3 * spread, 100 * spread])
    from scipy.optimize import OptimizeWarning, curve_fit  # here: scoring needs no scipy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, scores, mos, p0=initial, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):
        return linear
    fitted = ScoreMap("logistic4", [float(p) for p in params], int(mos.size))
    if params[0] <= params[1]:
        return linear
    linear_error = np.mean((linear(scores) - mos) ** 2)
    logistic_error = np.mean((fitted(scores) - mos) ** 2)
    return fitted if logistic_error <= linear_error else linear
