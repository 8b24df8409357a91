"""How sure a bench's numbers are: a 95 % interval of each cell's mean and a paired test of LEAF
against the strongest other method at each budget.

Both work across the bench's runs (splits × seeds), the unit that is repeated: the interval is
a percentile bootstrap of the mean over a cell's runs, the test a Wilcoxon signed-rank test over
the runs both methods share (same split, seed and label draw). One run gives neither, and says so
rather than showing a zero-width interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
#: the keys that pair two methods' runs: the same data split, seed and label draw
PAIR_KEYS = ("split", "seed")


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE,
                  resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean; (nan, nan) for fewer than two values. The
    interval always holds the values' mean (identical values: the mean itself, which can lie a
    float off the values, e.g. three 0.7s)."""
    values = np.asarray(values, dtype=float)
    # sorted: the runs arrive in the order parallel workers finish, and the same runs must give
    # the same interval
    values = np.sort(values[~np.isnan(values)])
    if values.size < 2:
        return float("nan"), float("nan")
    centre = float(np.mean(values))
    if np.ptp(values) == 0:
        return centre, centre
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence,
                             n_resamples=resamples, method="percentile",
                             random_state=np.random.default_rng(seed))
    return (min(float(result.confidence_interval.low), centre),
            max(float(result.confidence_interval.high), centre))


def add_intervals(summary: pd.DataFrame, rows: pd.DataFrame, by: list[str],
                  metrics: tuple[str, ...]) -> pd.DataFrame:
    """``summary`` (one row per ``by`` group) with ``{metric}_low`` and ``{metric}_high``,
    widened where needed to hold the summary's own ``{metric}_mean`` (pandas may sum in another
    order than numpy, a float apart)."""
    summary = summary.copy()
    groups = dict(iter(rows.groupby(by, sort=True)))
    for metric in metrics:
        bounds = [mean_interval(groups[tuple(key)][metric].to_numpy())
                  for key in summary[by].itertuples(index=False)]
        low, high = (np.array([b[k] for b in bounds], dtype=float) for k in (0, 1))
        if f"{metric}_mean" in summary:
            mean = summary[f"{metric}_mean"].to_numpy(dtype=float)
            low, high = np.minimum(low, mean), np.maximum(high, mean)  # NaN (one run) stays
        summary[f"{metric}_low"] = low
        summary[f"{metric}_high"] = high
    return summary


@dataclass
class PairedTest:
    """LEAF against the best other method (by mean) of one selection and budget."""

    selection: str
    budget: float
    n_labels: int
    metric: str
    leaf: float
    rival: str
    rival_mean: float
    difference: float  # mean over the paired runs of LEAF − rival
    pairs: int
    p_value: float  # two-sided Wilcoxon signed-rank; nan when it cannot be computed
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def paired_tests(rows: pd.DataFrame, metric: str = "srcc", method: str = "LEAF",
                 exclude_prefix: str = "LEAF") -> list[PairedTest]:
    """At every (selection, budget) where ``method`` ran: the strongest method whose name does
    not start with ``exclude_prefix`` (LEAF's own ablations are not rivals), and a Wilcoxon
    signed-rank test over their paired runs."""
    tests: list[PairedTest] = []
    for (selection, budget), cell in rows.groupby(["selection", "budget"], sort=True):
        ours = cell[cell["method"] == method]
        others = cell[~cell["method"].str.startswith(exclude_prefix)]
        means = others.groupby("method")[metric].mean().dropna()
        if ours.empty or means.empty or ours[metric].isna().all():
            continue
        rival = str(means.idxmax())
        paired = ours.merge(others[others["method"] == rival], on=list(PAIR_KEYS),
                            suffixes=("", "_rival")).dropna(subset=[metric, f"{metric}_rival"])
        differences = (paired[metric] - paired[f"{metric}_rival"]).to_numpy()
        p_value, note = wilcoxon(differences)
        tests.append(PairedTest(
            selection=str(selection), budget=float(budget), n_labels=int(ours["n_labels"].iloc[0]),
            metric=metric, leaf=float(ours[metric].mean()), rival=rival,
            rival_mean=float(means[rival]),
            difference=float(differences.mean()) if differences.size else float("nan"),
            pairs=int(differences.size), p_value=p_value, note=note))
    return tests


def wilcoxon(differences: np.ndarray) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences, and a note a reader needs:
    with n pairs the smallest possible p is 2/2ⁿ, so below 6 pairs p < 0.05 cannot happen."""
    n = int(np.count_nonzero(differences))
    if differences.size < 2:
        return float("nan"), "one run: no test"
    if n == 0:
        return 1.0, "identical runs"
    p_value = float(stats.wilcoxon(differences, zero_method="wilcox",
                                   alternative="two-sided").pvalue)
    floor = 2.0 / 2 ** n
    note = f"{n} pairs: p cannot go below {floor:.3g}" if floor >= 0.05 else ""
    return p_value, note
