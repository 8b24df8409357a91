from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from leafiqa.judgments.pairs import derive_pairs, select_pairs
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.distill import DistillConfig, build_targets, distill_head
from leafiqa.student.losses import pair_loss
from leafiqa.teachers.protocol import make_point_judgment


def synthetic(n: int = 400, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim)).astype(np.float32)
    quality = features[:, :3] @ np.array([1.0, -0.5, 0.3])
    return features, quality


def teacher_points(keys, quality, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(quality + noise * rng.normal(size=quality.size))))
    return {k: make_point_judgment(image_key=k, teacher_id="t", prompt_version="v",
                                   levels=("good", "poor"), probs=[pi, 1 - pi],
                                   method="recorded") for k, pi in zip(keys, p, strict=True)}


def test_multilevel_backbone_pools_several_stages() -> None:
    backbone = MultiLevelBackbone("efficientnet-lite0", pretrained=True).eval()
    assert len(backbone.levels) == 5 and backbone.levels[-1].block_index == -1
    with torch.inference_mode():
        out = backbone(torch.randn(2, 3, 96, 96))
    assert out.shape == (2, backbone.feature_dim) == (2, 3552)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("change", [{}, {"pair_weight": 0.0}, {"point_weight": 0.0},
                                    {"use_reliability": False}, {"hidden": 0}])
def test_distillation_learns_the_teachers_ordering(change: dict) -> None:
    features, quality = synthetic()
    keys = [f"k{i}" for i in range(len(quality))]
    points = teacher_points(keys, quality)
    pairs = derive_pairs(points, select_pairs(keys, {k: p.score for k, p in points.items()}))
    targets = build_targets(keys, points, pairs)
    head = distill_head(features[:300], targets.restricted(np.arange(300)),
                        DistillConfig(steps=300, **change))
    rho = spearmanr(head.predict(features[300:]), quality[300:]).statistic
    assert rho > 0.8, rho


def test_reliability_weighting_discounts_unreliable_judgments() -> None:
    features, quality = synthetic(seed=1)
    keys = [f"k{i}" for i in range(len(quality))]
    points = teacher_points(keys, quality)
    # corrupt half the judgments but mark them unreliable
    corrupted = dict(points)
    for k in keys[::2]:
        judgment = points[k]
        corrupted[k] = type(judgment)(**{**judgment.__dict__, "score": 1 - judgment.score,
                                         "reliability": 0.0})
    targets = build_targets(keys, corrupted)
    weighted = distill_head(features, targets, DistillConfig(pair_weight=0, reliability_floor=0.0,
                                                             val_fraction=0))
    unweighted = distill_head(features, targets, DistillConfig(pair_weight=0,
                                                               use_reliability=False,
                                                               val_fraction=0))
    rho_w = spearmanr(weighted.predict(features), quality).statistic
    rho_u = spearmanr(unweighted.predict(features), quality).statistic
    assert rho_w > 0.8 and rho_w > rho_u + 0.3


def test_pair_loss_prefers_the_right_order() -> None:
    a, b = torch.tensor([2.0]), torch.tensor([0.0])
    right = pair_loss(a, b, torch.tensor([1.0]), torch.ones(1))
    wrong = pair_loss(b, a, torch.tensor([1.0]), torch.ones(1))
    assert right < wrong
    fidelity = pair_loss(a, b, torch.tensor([1.0]), torch.ones(1), kind="fidelity")
    assert 0 <= float(fidelity) < 0.2


def test_feature_blocks_describe_the_backbones_features() -> None:
    """The layout the scaler balances is the one the backbone pools: per size, per level, its
    means (any sign) then its standard deviations (never negative)."""
    from leafiqa.student.backbone import feature_blocks

    network = MultiLevelBackbone("efficientnet-lite0", pretrained=False).eval()
    blocks = feature_blocks("efficientnet-lite0", 2)
    assert sum(blocks) == 2 * network.feature_dim and len(blocks) == 4 * len(network.levels)
    with torch.no_grad():
        features = network(torch.randn(2, 3, 64, 64)).numpy()
    parts = np.split(features, np.cumsum(blocks[: len(blocks) // 2])[:-1], axis=1)
    assert all((part >= 0).all() for part in parts[1::2])  # standard deviations
    assert any((part < 0).any() for part in parts[0::2])  # means


def test_ridge_head_scores_its_training_images_as_if_unseen() -> None:
    """The ridge head's out-of-sample score of a judged image is the ridge refitted without
    that image (same penalty, same feature scaling); unjudged images keep the head's score."""
    from leafiqa.student.ridge import FeatureScaler, RidgeBasis, fit_ridge_loo

    features, quality = synthetic(n=90, dim=40, seed=3)
    keys = [f"k{i}" for i in range(90)]
    judged = teacher_points(keys[:70], quality[:70], noise=1.0)
    targets = build_targets(keys, judged)
    scaler = FeatureScaler.fit(features)
    head = distill_head(features, targets, DistillConfig(head="ridge", use_reliability=False),
                        scaler)
    unseen, seen = head.out_of_sample, head.predict(features)
    assert unseen is not None and unseen.shape == (90,)
    np.testing.assert_allclose(unseen[70:], seen[70:], atol=1e-4)
    rows, y = targets.point_index, targets.point_target.astype(np.float64)
    alpha = fit_ridge_loo(RidgeBasis.fit(features[rows], scaler), y).alpha
    assert np.isfinite(alpha)
    for i in (0, 17, 69):
        keep = rows != i
        refit = fit_ridge_loo(RidgeBasis.fit(features[rows[keep]], scaler), y[keep],
                              np.array([alpha]))
        assert unseen[i] == pytest.approx(float(refit(features[i:i + 1])[0]), abs=1e-6)
    # in sample the head fits its own judgments closer than it predicts them unseen
    in_error = np.mean((seen[rows] - y) ** 2)
    assert np.mean((unseen[rows] - y) ** 2) > in_error
    # its fit, as `leaf distill` prints it: the penalty and the agreement in and out of sample
    from scipy.stats import spearmanr

    fit = head.fit
    assert fit is not None and fit.head == "ridge" and fit.penalty == pytest.approx(alpha)
    assert (fit.images, fit.point_judgments) == (90, 70)
    assert fit.in_sample == pytest.approx(spearmanr(seen[rows], y).statistic, abs=1e-6)
    assert fit.out_of_sample == pytest.approx(spearmanr(unseen[rows], y).statistic, abs=1e-6)
    assert f"penalty α {alpha:.3g} (leave-one-out)" in fit.summary()


def test_the_mlp_head_has_no_out_of_sample_scores() -> None:
    features, quality = synthetic(n=60, dim=16)
    keys = [f"k{i}" for i in range(60)]
    targets = build_targets(keys, teacher_points(keys, quality))
    head = distill_head(features, targets, DistillConfig(head="mlp", steps=5))
    assert head.out_of_sample is None
    assert head.fit is not None and head.fit.penalty is None  # its held-out part: validation
    assert head.fit.out_of_sample is not None and "on the validation slice" in head.fit.summary()


def test_the_pca_of_more_images_than_features_is_the_svd_one() -> None:
    """With more rows than features the head's PCA comes from the d×d scatter matrix (no n×d
    SVD in memory): the same axes up to their signs, the same global scale."""
    from leafiqa.student.head import pca_projection, principal_axes

    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 30)) @ rng.normal(size=(30, 30)) + rng.normal(size=30)
    centred = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-4)
    singular, vt = principal_axes(centred)
    _, want_singular, want_vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(singular, want_singular, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(vt * want_vt, axis=1)), 1.0, atol=1e-8)
    mean, projection = pca_projection(features.astype(np.float32), 8)
    projected = (features - mean) @ projection
    want = centred @ want_vt[:8].T
    np.testing.assert_allclose(np.abs(projected), np.abs(want) / np.sqrt(
        np.mean(want_singular[:8] ** 2) / 399), rtol=1e-4, atol=1e-4)
