from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from leafiqa.calibration.mapping import ScoreMap, fit_score_map, logistic4
from leafiqa.experiments.labels_only import CalibrationConfig, finetune_head, train_on_labels
from leafiqa.labelling.designs import select_labels
from leafiqa.student.distill import DistillConfig, build_targets, distill_head
from leafiqa.student.ridge import fit_ridge
from tests.student.test_student import synthetic, teacher_points


def test_logistic_fit_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-3, 3, 300)
    mos = logistic4(s, 4.5, 0.5, 0.3, 0.8) + rng.normal(0, 0.05, s.size)
    fitted = fit_score_map(s, mos)
    assert fitted.kind == "logistic4"
    assert np.abs(fitted(s) - logistic4(s, 4.5, 0.5, 0.3, 0.8)).max() < 0.15
    grid = np.linspace(-5, 5, 50)
    assert np.all(np.diff(fitted(grid)) >= 0)  # monotonic increasing


def test_few_labels_fall_back_to_linear_and_none() -> None:
    assert fit_score_map(np.array([]), np.array([])).kind == "none"
    few = fit_score_map(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert few.kind == "linear" and few(np.array([3.0]))[0] == pytest.approx(4.0)
    reversed_ = fit_score_map(np.array([0.0, 1.0, 2.0]), np.array([3.0, 2.0, 1.0]))
    # never reverses the student's order, never erases it: ≈ the MOS mean, ranked as scored
    assert reversed_.params[0] > 0
    assert np.all(np.diff(reversed_(np.array([0.0, 1.0, 2.0]))) > 0)
    assert np.allclose(reversed_(np.array([0.0, 1.0, 2.0])), 2.0, atol=0.05)
    again = ScoreMap.from_dict(few.to_dict())
    assert again(np.array([1.0]))[0] == pytest.approx(2.0)


def test_label_selection_random_and_spread() -> None:
    scores = np.linspace(0, 1, 1000)
    random_rows = select_labels(1000, 20, strategy="random", seed=3)
    assert len(set(random_rows)) == 20
    assert np.array_equal(random_rows, select_labels(1000, 20, strategy="random", seed=3))
    spread = select_labels(1000, 20, strategy="spread", teacher_scores=scores, seed=3)
    assert len(spread) == 20
    # one label per twentieth of the teacher's score range
    assert np.array_equal(np.sort(scores[spread] // 0.05), np.arange(20))
    with pytest.raises(ValueError, match="teacher score"):
        select_labels(1000, 20, strategy="spread")
    assert select_labels(10, 0).size == 0 and select_labels(10, 50).size == 10


def test_finetuning_on_labels_moves_towards_mos() -> None:
    features, quality = synthetic(n=600, seed=2)
    keys = [f"k{i}" for i in range(600)]
    # a teacher that gets one factor wrong; MOS follows the true quality
    teacher_quality = quality - 1.0 * features[:, 0]
    targets = build_targets(keys, teacher_points(keys, teacher_quality))
    # fine-tuning trains an MLP head (the closed-form ridge head has only an output affine)
    head = distill_head(features, targets, DistillConfig(head="mlp"))
    rows = select_labels(600, 100, seed=0)
    mos = 3 + quality[rows]
    tuned = finetune_head(head, features, rows, mos, CalibrationConfig())
    before = spearmanr(head.predict(features), quality).statistic
    after = spearmanr(tuned.predict(features), quality).statistic
    assert after > before + 0.05
    alone = train_on_labels(features, rows, mos)
    assert spearmanr(alone.predict(features), quality).statistic > 0.6


def test_ridge_probe() -> None:
    features, quality = synthetic(n=300)
    model = fit_ridge(features[:200], quality[:200])
    assert spearmanr(model(features[200:]), quality[200:]).statistic > 0.9


def test_scores_equal_up_to_float_noise_map_to_the_mean_without_warnings() -> None:
    # a recorded teacher sure of every labelled image: log-odds 27.63 ± float noise
    scores = np.full(6, 27.631021115928547) + np.array([0, 1, 0, -1, 0, 2]) * 3.6e-15
    mos = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_map = fit_score_map(scores, mos)
    assert score_map.kind == "linear" and score_map.params[0] == 0.0
    assert np.allclose(score_map(scores), mos.mean())
