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


def test_a_confident_but_wrong_member_weighs_little() -> None:
    from leafiqa.judgments.ensemble import member_weights

    rng = np.random.default_rng(0)
    keys = [f"k{i}" for i in range(300)]
    quality = rng.normal(size=300)

    def member(name: str, signal: float, noise: float, sharp: float) -> dict:
        logit = sharp * (signal * quality + noise * rng.normal(size=300))
        return points(name, {k: float(1 / (1 + np.exp(-v)))
                             for k, v in zip(keys, logit, strict=True)})

    members = {
        "good1": member("good1", 1.0, 0.5, 1.0),
        "good2": member("good2", 1.0, 0.6, 1.0),
        "good3": member("good3", 1.0, 0.7, 1.0),
        # near-certain answers (self-reliability ≈ 1) that track quality barely
        "loud": member("loud", 0.1, 1.0, 30.0),
    }
    assert min(p.reliability for p in members["loud"].values()) < 1.0
    assert np.mean([p.reliability for p in members["loud"].values()]) > np.mean(
        [p.reliability for p in members["good1"].values()])
    weights = {w.teacher_id: w for w in member_weights(members, keys)}
    assert sum(w.weight for w in weights.values()) == pytest.approx(1.0)
    assert weights["loud"].weight < 0.1 < weights["good3"].weight < weights["good1"].weight
    # labels: make "good3" the one that matches the MOS best; its weight grows with labels
    mos = {k: float(np.log(members["good3"][k].score / (1 - members["good3"][k].score)))
           for k in keys}
    labelled = dict(list(mos.items())[:200])
    relabelled = {w.teacher_id: w for w in member_weights(members, keys, labelled)}
    assert relabelled["good3"].label_correlation == pytest.approx(1.0)
    assert relabelled["good3"].weight > weights["good3"].weight
    target = np.array([mos[k] for k in keys])

    def agreement(weights: list) -> float:  # noqa: ANN001
        ensemble = ensemble_points(members, keys, weights)
        z = np.array([np.log(ensemble[k].score / (1 - ensemble[k].score)) for k in keys])
        return float(np.corrcoef(z, target)[0, 1])

    assert agreement(list(relabelled.values())) > agreement(list(weights.values()))


def test_log_odds_of_a_two_level_teacher_is_its_logit_margin() -> None:
    from leafiqa.teachers.protocol import from_log_odds, log_odds
    from leafiqa.teachers.recorded import two_level_probs

    for margin in (-9.0, -0.3, 0.0, 2.5, 12.0):
        p_good, _ = two_level_probs(margin + 1.0, 1.0)
        assert log_odds(p_good) == pytest.approx(margin, abs=1e-6)
        assert from_log_odds(log_odds(p_good)) == pytest.approx(p_good)
