from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leafiqa.evaluation.stats import mean_interval, paired_tests, wilcoxon


def test_the_interval_holds_the_mean_and_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.7, 0.05, 5), rng.normal(0.7, 0.05, 200)
    low, high = mean_interval(few)
    assert low < few.mean() < high
    low_many, high_many = mean_interval(many)
    assert high_many - low_many < high - low
    assert np.isnan(mean_interval(np.array([0.5]))).all()  # one run: no interval
    assert mean_interval(np.array([0.5, 0.5, 0.5])) == (0.5, 0.5)
    assert mean_interval(few) == mean_interval(few[::-1])  # the runs' order does not matter
    same = np.full(3, 0.7)  # their mean is a float below 0.7: the interval is the mean itself
    assert mean_interval(same) == (same.mean(), same.mean())


def rows_for(leaf: list[float], probe: list[float], ablation: list[float]) -> pd.DataFrame:
    rows = []
    for method, values in (("LEAF", leaf), ("linear probe (ridge)", probe),
                           ("LEAF no correction (map only)", ablation),
                           ("student on labels alone", [v - 0.3 for v in probe])):
        for i, value in enumerate(values):
            rows.append({"selection": "random", "budget": 0.1, "n_labels": 24, "method": method,
                         "split": f"split_{i % 5 + 1}", "seed": i // 5, "srcc": value})
    return pd.DataFrame(rows)


def test_leaf_is_tested_against_the_strongest_method_that_is_not_leaf() -> None:
    rng = np.random.default_rng(1)
    probe = list(rng.normal(0.65, 0.02, 10))
    leaf = [p + 0.03 + rng.normal(0, 0.01) for p in probe]
    rows = rows_for(leaf, probe, ablation=[0.99] * 10)  # an ablation never counts as the rival
    (test,) = paired_tests(rows)
    assert test.rival == "linear probe (ridge)" and test.pairs == 10
    differences = np.array(leaf) - np.array(probe)
    assert test.difference == pytest.approx(differences.mean())
    assert test.p_value == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert test.p_value < 0.01 and test.note == ""


def test_too_few_runs_say_so() -> None:
    assert wilcoxon(np.array([0.1]))[1] == "one run: no test"
    p_value, note = wilcoxon(np.array([0.1, 0.2, 0.05]))
    assert p_value == pytest.approx(0.25) and "cannot go below 0.25" in note
    assert wilcoxon(np.zeros(4)) == (1.0, "identical runs")
