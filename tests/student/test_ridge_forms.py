"""The ridge's two forms (dual: n×n Gram matrix; primal: d×d, streamed) give the same fits."""

from __future__ import annotations

import numpy as np
import pytest

from leafiqa.student.ridge import (
    FeatureScaler,
    FeatureSource,
    PrimalRidgeBasis,
    RidgeBasis,
    feature_priors,
    fit_ridge_loo,
    ridge_basis,
)


def _pool(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    features = (latent @ rng.normal(size=(8, d)) + 0.5 * rng.normal(size=(n, d))
                + rng.normal(size=d) * 3).astype(np.float32)
    targets = latent @ rng.normal(size=8) + 0.3 * rng.normal(size=n)
    return features, targets


@pytest.mark.parametrize(("n", "d"), [(120, 130), (130, 120)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("blocks", [None, (30, 50, 40)])
def test_dual_and_primal_agree_near_n_equals_d(n: int, d: int, weighted: bool,
                                               blocks: tuple[int, ...] | None) -> None:
    features, targets = _pool(n, d)
    if blocks is not None:
        blocks = (*blocks[:-1], d - sum(blocks[:-1]))
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.2, 1.0, n) if weighted else None
    if weighted:
        weights[:3] = 0.0  # weight-0 images: no leave-one-out prediction in either form
    scaler = FeatureScaler.fit(features, blocks)
    source = FeatureSource.of(features, chunk_rows=37)  # chunks that do not divide n
    dual = fit_ridge_loo(ridge_basis(source, scaler, weights, form="dual"), targets)
    primal_basis = ridge_basis(source, scaler, weights, form="primal")
    assert isinstance(primal_basis, PrimalRidgeBasis)
    primal = fit_ridge_loo(primal_basis, targets)
    assert np.isfinite(dual.alpha) and primal.alpha == dual.alpha
    np.testing.assert_allclose(primal.coef, dual.coef, rtol=1e-6, atol=1e-9)
    assert primal.intercept == pytest.approx(dual.intercept, rel=1e-8, abs=1e-10)
    assert primal.loo_error == pytest.approx(dual.loo_error, rel=1e-8)
    np.testing.assert_allclose(primal.loo_predictions, dual.loo_predictions, rtol=1e-7,
                               atol=1e-9)
    if weighted:
        assert np.isnan(primal.loo_predictions[:3]).all()
    # every α's leave-one-out error, not only the chosen one's: a narrow grid around it
    grid = np.array([dual.alpha / 10, dual.alpha * 10])
    for alpha in grid:
        one_dual = fit_ridge_loo(RidgeBasis.fit(features, scaler, weights), targets, [alpha])
        one_primal = fit_ridge_loo(primal_basis, targets, [alpha])
        assert one_primal.loo_error == pytest.approx(one_dual.loo_error, rel=1e-8)


def test_auto_form_follows_the_shape() -> None:
    wide, _ = _pool(20, 40)
    tall, _ = _pool(40, 20)
    assert isinstance(ridge_basis(FeatureSource.of(wide)), RidgeBasis)
    assert isinstance(ridge_basis(FeatureSource.of(tall)), PrimalRidgeBasis)


def test_allow_none_picks_the_mean_when_features_are_noise() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 10))
    targets = rng.normal(size=200)
    primal = fit_ridge_loo(ridge_basis(FeatureSource.of(features)), targets, allow_none=True)
    dual = fit_ridge_loo(ridge_basis(FeatureSource.of(features), form="dual"), targets,
                         allow_none=True)
    assert primal.alpha == dual.alpha
    assert primal.loo_error == pytest.approx(dual.loo_error, rel=1e-8)


def test_streamed_scaler_matches_the_in_memory_one() -> None:
    features, _ = _pool(301, 50)
    streamed = FeatureScaler.fit_source(FeatureSource.of(features, chunk_rows=64), (20, 30))
    whole = FeatureScaler.fit(features, (20, 30))
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-10)
    assert streamed.prior == whole.prior == "blocks"


def test_source_of_rows_reads_those_rows_in_order() -> None:
    features = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = np.array([7, 2, 5])
    source = FeatureSource.of(features, rows, chunk_rows=2)
    got = np.concatenate([chunk for _, chunk in source.chunks()])
    np.testing.assert_array_equal(got, features[rows])


def test_primal_fits_its_own_scaler_in_the_same_pass() -> None:
    features, targets = _pool(300, 40)
    blocks = (15, 25)
    basis = PrimalRidgeBasis.fit(FeatureSource.of(features, chunk_rows=64), None, None,
                                 blocks=blocks)
    whole = FeatureScaler.fit(features, blocks)
    np.testing.assert_allclose(basis.scaler.mean, whole.mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(basis.scaler.std, whole.std, rtol=1e-10)
    given = fit_ridge_loo(ridge_basis(FeatureSource.of(features), whole, form="primal"), targets)
    own = fit_ridge_loo(basis, targets)
    assert own.alpha == given.alpha
    np.testing.assert_allclose(own.coef, given.coef, rtol=1e-8, atol=1e-12)


def test_float32_products_stay_close_to_float64() -> None:
    features, targets = _pool(400, 60)
    source = FeatureSource.of(features, chunk_rows=128)
    exact = fit_ridge_loo(PrimalRidgeBasis.fit(source), targets)
    fast = fit_ridge_loo(PrimalRidgeBasis.fit(source, dtype=np.float32), targets)
    assert fast.alpha == exact.alpha
    assert fast.loo_error == pytest.approx(exact.loo_error, rel=1e-4)
    np.testing.assert_allclose(fast.coef, exact.coef, rtol=1e-3,
                               atol=1e-4 * np.abs(exact.coef).max())


def test_ridge_head_streams_a_pool_with_more_images_than_features() -> None:
    from leafiqa.student.distill import TeacherTargets, ridge_head

    features, targets = _pool(500, 30)
    n = features.shape[0]
    judged = TeacherTargets(np.arange(n), targets.astype(np.float32),
                            np.full(n, 0.8, dtype=np.float32), *[np.zeros(0)] * 4)
    in_memory = ridge_head(features, judged)
    streamed = ridge_head(FeatureSource.of(features, chunk_rows=70), judged)
    x = features[:50]
    np.testing.assert_allclose(streamed.predict(x), in_memory.predict(x), rtol=1e-5, atol=1e-5)
    fit = fit_ridge_loo(ridge_basis(FeatureSource.of(features), form="dual"), targets)
    np.testing.assert_allclose(in_memory.predict(x), fit(x), rtol=1e-4, atol=1e-4)


def test_take_gathers_scattered_rows_one_window_at_a_time() -> None:
    features = np.arange(300, dtype=np.float32).reshape(100, 3)
    reads: list[tuple[int, int]] = []

    def read(start: int, stop: int) -> np.ndarray:
        reads.append((start, stop))
        return features[start:stop]

    source = FeatureSource(100, 3, read, chunk_rows=8)
    rows = np.array([97, 3, 50, 4, 97, 0])
    got = source.take(rows)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, features[rows])
    assert max(b - a for a, b in reads) <= 8 and len(reads) == 3  # windows 12, 0, 6
    reads.clear()
    np.testing.assert_array_equal(source.subset(rows[::-1]).array(), features[rows[::-1]])
    assert max(b - a for a, b in reads) <= 8
    np.testing.assert_array_equal(source.array(), features)
    assert source.take(np.zeros(0, dtype=int)).shape == (0, 3)


def test_streamed_feature_priors_match_the_in_memory_ones() -> None:
    features, _ = _pool(203, 30)
    for blocks in (None, (10, 20)):
        streamed = feature_priors(FeatureSource.of(features, chunk_rows=32), blocks)
        whole = feature_priors(features, blocks)
        assert [s.prior for s in streamed] == [s.prior for s in whole]
        for mine, theirs in zip(streamed, whole, strict=True):
            np.testing.assert_allclose(mine.mean, theirs.mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(mine.std, theirs.std, rtol=1e-10)
