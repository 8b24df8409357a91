"""Agreement with human MOS: SRCC, KRCC, PLCC (raw and after a 4-parameter logistic), RMSE."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from leafiqa.calibration.mapping import fit_score_map
from leafiqa.errors import DataError


def _correlation(function, pred: np.ndarray, mos: np.ndarray) -> float:  # noqa: ANN001
    """A constant input (a teacher that says the same for every image) correlates 0, not NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        value = float(function(pred, mos).statistic)
    return 0.0 if np.isnan(value) else value


def srcc(pred: np.ndarray, mos: np.ndarray) -> float:
    return _correlation(stats.spearmanr, pred, mos)


def krcc(pred: np.ndarray, mos: np.ndarray) -> float:
    return _correlation(stats.kendalltau, pred, mos)


def plcc(pred: np.ndarray, mos: np.ndarray) -> float:
    return _correlation(stats.pearsonr, pred, mos)


def evaluate(pred: np.ndarray, mos: np.ndarray, calibrated: bool = True) -> dict[str, float]:
    """Metrics of predictions against MOS on one test set.

    - ``plcc``: Pearson of the predictions as they are (for a calibrated model: on the MOS scale).
    - ``plcc_fitted``: Pearson after a 4-parameter logistic fitted on this test set itself (the
      VQEG convention most IQA papers report as "PLCC").
    - ``rmse``: of the predictions as they are, only when ``calibrated`` (on the MOS scale).
    An uncalibrated model (0 labels) reports rank metrics; PLCC there is informational."""
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    if pred.shape != mos.shape or pred.size < 3:
        raise DataError(f"need ≥3 matched predictions and MOS, got {pred.shape} and {mos.shape}")
    if np.std(pred) == 0:
        return {"srcc": 0.0, "krcc": 0.0, "plcc": 0.0, "plcc_fitted": 0.0,
                "rmse": float(np.sqrt(np.mean((pred - mos) ** 2))) if calibrated else float("nan"),
                "n": int(pred.size)}
    fitted = fit_score_map(pred, mos)(pred)
    return {
        "srcc": srcc(pred, mos),
        "krcc": krcc(pred, mos),
        "plcc": plcc(pred, mos),
        "plcc_fitted": plcc(fitted, mos) if np.std(fitted) > 0 else 0.0,
        "rmse": float(np.sqrt(np.mean((pred - mos) ** 2))) if calibrated else float("nan"),
        "n": int(pred.size),
    }


def scale_mismatch(model_range: tuple[float, float] | None, mos: np.ndarray) -> str | None:
    """A warning when MOS on another scale than the model's would make its RMSE (and PLCC of
    the calibrated scores) meaningless: the data's MOS range and the model's score range are
    several times apart in span, or overlap on less than half of the data's range."""
    if model_range is None or np.asarray(mos).size < 2:
        return None
    low, high = float(model_range[0]), float(model_range[1])
    data_low, data_high = float(np.min(mos)), float(np.max(mos))
    span, data_span = max(high - low, 1e-9), max(data_high - data_low, 1e-9)
    overlap = max(0.0, min(high, data_high) - max(low, data_low))
    if data_span / span > 3 or span / data_span > 3 or overlap < 0.5 * data_span:
        return (f"the data's MOS runs {data_low:g}–{data_high:g} but the model scores on "
                f"{low:g}–{high:g}: RMSE and calibrated PLCC compare different scales; rank "
                "metrics (SRCC, KRCC) and PLCC* still hold")
    return None
