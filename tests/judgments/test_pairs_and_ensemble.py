from __future__ import annotations

import numpy as np
import pytest

from leafiqa.judgments.ensemble import ensemble_pairs, ensemble_points, merge_with_fallback
from leafiqa.judgments.pairs import derive_pairs, select_pairs
from leafiqa.teachers.protocol import make_point_judgment


def points(teacher: str, scores: dict[str, float], reliability_probs=None):
    out = {}
    for key, score in scores.items():
        out[key] = make_point_judgment(image_key=key, teacher_id=teacher, prompt_version="v",
                                       levels=("good", "poor"), probs=[score, 1 - score],
                                       method="recorded")
    return out


def test_select_pairs_budget_uniqueness_and_nearness() -> None:
    keys = [f"k{i:03d}" for i in range(200)]
    scores = {k: i / 200 for i, k in enumerate(keys)}
    pairs = select_pairs(keys, scores, pairs_per_image=4, near_fraction=0.5, seed=1)
    assert len(pairs) == len(set(pairs)) and all(a < b for a, b in pairs)
    assert 200 * 4 * 0.8 <= len(pairs) <= 200 * 4
    gaps = np.array([abs(scores[a] - scores[b]) for a, b in pairs])
    assert np.mean(gaps < 5 / 200) > 0.35  # about half are near pairs
    assert select_pairs(keys, scores, pairs_per_image=4, seed=1) == pairs  # deterministic


def test_derived_pairs_point_like_scores_and_shrink_for_ties() -> None:
    judged = points("t", {"a": 0.9, "b": 0.2, "c": 0.2})
    pairs = {(p.key_a, p.key_b): p for p in derive_pairs(judged, [("a", "b"), ("b", "c")])}
    assert pairs[("a", "b")].prob_a_better > 0.9
    assert pairs[("b", "c")].prob_a_better == pytest.approx(0.5)
    assert pairs[("b", "c")].reliability == 0.0 < pairs[("a", "b")].reliability


def test_ensemble_agreement_drives_reliability() -> None:
    keys = ["a", "b", "c", "d"]
    t1 = points("t1", {"a": 0.9, "b": 0.7, "c": 0.3, "d": 0.1})
    t2 = points("t2", {"a": 0.8, "b": 0.1, "c": 0.6, "d": 0.2})  # disagrees on b and c
    ens = ensemble_points({"t1": t1, "t2": t2}, keys)
    assert ens["a"].score > ens["d"].score
    assert ens["a"].reliability > ens["b"].reliability
    assert ens["a"].levels == ()  # an ensemble has no level distribution, and says so
    pairs = {(p.key_a, p.key_b): p for p in ensemble_pairs({"t1": t1, "t2": t2},
                                                           [("a", "d"), ("b", "c")])}
    assert pairs[("a", "d")].prob_a_better == 1.0 and pairs[("a", "d")].reliability == 1.0
    assert pairs[("b", "c")].reliability < 0.5


def test_fallback_fills_missing_images_on_a_common_scale() -> None:
    primary = points("p", {"a": 0.9, "b": 0.1})
    fallback = points("f", {"a": 0.2, "b": 0.3, "c": 0.6})
    merged = merge_with_fallback([primary, fallback])
    assert merged["a"].teacher_id == "p" and merged["c"].teacher_id == "f"
    assert merged["a"].score > merged["b"].score
