from __future__ import annotations

import pytest

from leafiqa.teachers.protocol import (
    TeacherError,
    combine_pair_orders,
    distribution_reliability,
    expected_score,
    make_point_judgment,
)


def test_expected_score_spans_zero_to_one() -> None:
    assert expected_score([1, 0, 0, 0, 0]) == pytest.approx(1.0)
    assert expected_score([0, 0, 0, 0, 1]) == pytest.approx(0.0)
    assert expected_score([0, 0, 1, 0, 0]) == pytest.approx(0.5)
    assert expected_score([0.3, 0.7]) == pytest.approx(0.3)


def test_reliability_peaked_above_flat() -> None:
    peaked = distribution_reliability([0.9, 0.05, 0.03, 0.01, 0.01])
    flat = distribution_reliability([0.2] * 5)
    assert flat == pytest.approx(0.0, abs=1e-9)
    assert 0.5 < peaked <= 1.0


def test_pair_orders_cancel_position_bias_and_lower_reliability() -> None:
    prob, reliability = combine_pair_orders(0.9, 0.1)  # consistent: A better both ways
    assert prob == pytest.approx(0.9) and reliability == pytest.approx(0.8)
    biased_prob, biased_rel = combine_pair_orders(0.9, 0.9)  # always "first": pure bias
    assert biased_prob == pytest.approx(0.5) and biased_rel == pytest.approx(0.0)
    with pytest.raises(TeacherError):
        combine_pair_orders(1.5, 0.2)


def test_point_judgment_validates_and_downweights_fallbacks() -> None:
    common = dict(image_key="k", teacher_id="t", prompt_version="v", levels=("good", "poor"))
    logit = make_point_judgment(probs=[0.9, 0.1], method="logprobs", **common)
    parsed = make_point_judgment(probs=[0.9, 0.1], method="parsed", **common)
    assert logit.score == pytest.approx(0.9)
    assert parsed.reliability < logit.reliability
    with pytest.raises(TeacherError):
        make_point_judgment(probs=[float("nan"), 1.0], method="logprobs", **common)
    with pytest.raises(TeacherError):
        make_point_judgment(probs=[0.2, 0.3, 0.5], method="logprobs", **common)
