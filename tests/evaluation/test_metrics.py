from __future__ import annotations

import numpy as np
import pytest

from leafiqa.evaluation.metrics import evaluate


def test_metrics_of_self_shuffled_and_reversed() -> None:
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 5, 500)
    perfect = evaluate(mos, mos)
    assert perfect["srcc"] == pytest.approx(1) and perfect["krcc"] == pytest.approx(1)
    assert perfect["plcc"] == pytest.approx(1) and perfect["rmse"] == pytest.approx(0)
    shuffled = evaluate(rng.permutation(mos), mos)
    assert abs(shuffled["srcc"]) < 0.12 and abs(shuffled["plcc"]) < 0.12
    reversed_ = evaluate(-mos, mos, calibrated=False)
    assert reversed_["srcc"] == pytest.approx(-1) and np.isnan(reversed_["rmse"])


def test_fitted_plcc_handles_nonlinear_monotonic_predictions() -> None:
    mos = np.linspace(0, 5, 200)
    pred = np.exp(mos)  # right order, wrong shape
    result = evaluate(pred, mos, calibrated=False)
    assert result["srcc"] == pytest.approx(1)
    assert result["plcc_fitted"] > result["plcc"]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        evaluate(np.zeros(3), np.zeros(4))


def test_a_data_set_on_another_mos_scale_is_flagged() -> None:
    import numpy as np

    from leafiqa.evaluation.metrics import scale_mismatch

    agiqa_like, clive_like = np.linspace(0.2, 4.4, 50), np.linspace(5, 85, 50)
    assert scale_mismatch((0.0, 5.0), agiqa_like) is None
    assert "0–5" in scale_mismatch((0.0, 5.0), clive_like)
    assert scale_mismatch((0.0, 100.0), clive_like) is None
    assert scale_mismatch(None, clive_like) is None


def test_the_feature_cache_stays_put_when_the_output_moves() -> None:
    from leafiqa.config import RunConfig, default_cache

    assert RunConfig(output="/tmp/elsewhere").cache_dir == default_cache()
    assert str(RunConfig(cache="/tmp/c").cache_dir) == "/tmp/c"
