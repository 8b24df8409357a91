"""Calibration with the distilled student as a prior and a leave-one-out ridge correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from leafiqa.calibration.prior import MIN_LABELS_FOR_CORRECTION, calibrate_prior
from leafiqa.student.ridge import FeatureScaler, RidgeBasis, fit_ridge, fit_ridge_loo


def synthetic(n: int = 400, d: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    quality = features[:, :3] @ np.array([1.0, 0.7, -0.5])
    return rng, features, quality


def test_ridge_coefficients_reproduce_its_predictions_and_loo_is_exact() -> None:
    rng, x, quality = synthetic(80, 30)
    y = quality + 0.3 * rng.normal(size=80)
    fit = fit_ridge(x, y)
    scaler = FeatureScaler.fit(x)
    xs = scaler(x)
    # the closed form in standardised units, refitted without image 0, predicts image 0 as the
    # leave-one-out prediction says
    keep = np.arange(1, 80)
    centred = y[keep] - y[keep].mean()
    w = np.linalg.solve(xs[keep].T @ xs[keep] + fit.alpha * np.eye(30), xs[keep].T @ centred)
    # intercept refitted too: LOO of a centred ridge differs only by the mean term's leverage
    assert fit.loo_predictions[0] == pytest.approx(xs[0] @ w + y[keep].mean(), abs=0.05)
    w_all = np.linalg.solve(xs.T @ xs + fit.alpha * np.eye(30), xs.T @ (y - y.mean()))
    np.testing.assert_allclose(fit(x), xs @ w_all + y.mean(), atol=1e-8)


def test_features_that_say_nothing_get_little_or_no_correction() -> None:
    spreads = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(60, 40))
        noise = rng.normal(size=60)
        fit = fit_ridge_loo(RidgeBasis.fit(x), noise, allow_none=True)
        if np.isinf(fit.alpha):
            assert not fit.coef.any()
            assert fit(x) == pytest.approx(np.full(60, noise.mean()))
        spreads.append(np.std(fit(rng.normal(size=(200, 40)))))
    # on new images the correction stays far smaller than the noise it was fitted to
    assert np.median(spreads) < 0.3


def test_a_good_prior_needs_no_correction_with_few_labels() -> None:
    rng, x, quality = synthetic()
    prior = quality + 0.2 * rng.normal(size=quality.size)  # the student already knows
    mos = 3 + 0.8 * np.tanh(quality / 2) + 0.05 * rng.normal(size=quality.size)
    few = np.arange(MIN_LABELS_FOR_CORRECTION - 1)
    calibration = calibrate_prior(prior[few], RidgeBasis.fit(x[few]), mos[few])
    assert calibration.correction is None and calibration.score_map.kind == "linear"
    assert calibration.reason == f"fewer than {MIN_LABELS_FOR_CORRECTION} labels"
    # with no labels at all, the prediction is the prior itself (ranks only)
    empty = calibrate_prior(prior[:0], RidgeBasis.fit(x[:2]), mos[:0])
    assert empty.score_map.kind == "none"


def test_labels_correct_a_prior_that_misses_part_of_quality() -> None:
    rng, x, quality = synthetic()
    prior = x[:, 0] + 0.1 * rng.normal(size=quality.size)  # knows one factor of three
    mos = quality + 0.1 * rng.normal(size=quality.size)
    labelled, test = np.arange(200), np.arange(200, 400)
    scaler = FeatureScaler.fit(x)
    calibration = calibrate_prior(prior[labelled], RidgeBasis.fit(x[labelled], scaler),
                                  mos[labelled])
    assert calibration.correction is not None
    corrected = calibration(prior[test], x[test])
    mapped_only = calibration.score_map(prior[test])
    assert spearmanr(corrected, mos[test])[0] > spearmanr(mapped_only, mos[test])[0] + 0.2


def test_a_weight_of_two_fits_like_a_duplicated_image() -> None:
    rng, x, quality = synthetic(50, 20)
    y = quality + 0.3 * rng.normal(size=50)
    alphas = np.array([5.0])
    weights = np.ones(50)
    weights[:10] = 2.0
    scaler = FeatureScaler.fit(x)
    weighted = fit_ridge_loo(RidgeBasis.fit(x, scaler, weights), y, alphas)
    doubled = np.concatenate([np.arange(50), np.arange(10)])
    # duplicating rows = weighting them; the penalty is per mean weight, so scale α by 60/50
    duplicated = fit_ridge_loo(RidgeBasis.fit(x[doubled], scaler), y[doubled], alphas * 60 / 50)
    new = rng.normal(size=(30, 20))
    np.testing.assert_allclose(weighted(new), duplicated(new), atol=1e-8)


def test_a_few_labels_against_the_prior_keep_its_ranking() -> None:
    """Four labels that happen to run against a good prior (noise) must not erase the prior:
    the calibrated scores stay near the labels' mean and in the student's order."""
    rng, x, quality = synthetic()
    student = quality + 0.1 * rng.normal(size=quality.size)
    labelled = np.argsort(student)[[10, 150, 250, 390]]
    mos = np.array([4.0, 3.5, 3.0, 2.5])  # the student's order, reversed
    calibration = calibrate_prior(student[labelled], RidgeBasis.fit(x[labelled]), mos)
    predicted = calibration(student, x)
    assert spearmanr(predicted, student)[0] == pytest.approx(1.0)
    assert np.abs(predicted - mos.mean()).max() < 0.1 * mos.std()


def test_a_ridge_beside_an_unpenalised_covariate_is_the_joint_solution_with_exact_loo() -> None:
    from leafiqa.student.ridge import fit_ridge_loo_covariate

    rng, x, quality = synthetic(40, 60)
    covariate = rng.normal(size=40)
    y = 2 * covariate + quality + rng.normal(size=40)
    basis = RidgeBasis.fit(x)
    xs = basis.scaler(x)
    for alpha in (5.0, np.inf):
        fit = fit_ridge_loo_covariate(basis, y, covariate, np.array([alpha]) if alpha < np.inf
                                      else np.array([]), allow_none=alpha == np.inf)
        assert fit is not None and fit.ridge.alpha == alpha
        design = np.column_stack([np.ones(40), covariate, xs])
        penalty = np.diag([0.0, 0.0] + [alpha if alpha < np.inf else 0.0] * 60)
        if alpha == np.inf:  # the covariate's line alone
            design, penalty = design[:, :2], penalty[:2, :2]

        def solve(rows: np.ndarray, design=design, penalty=penalty) -> np.ndarray:
            a = design[rows]
            return np.linalg.solve(a.T @ a + penalty, a.T @ y[rows])

        np.testing.assert_allclose(fit(covariate, x), design @ solve(np.arange(40)), atol=1e-9)
        brute = [design[i] @ solve(np.arange(40) != i) for i in range(40)]
        np.testing.assert_allclose(fit.ridge.loo_predictions, brute, atol=1e-9)
    assert fit_ridge_loo_covariate(basis, y, np.ones(40)) is None  # a constant says nothing


def test_leave_one_out_picks_the_two_stage_or_the_joint_form() -> None:
    """A student half right (it also follows a feature unrelated to quality). Calibration
    gives the form — the line then a correction of its residuals, or the student's weight
    refitted with the correction — whose leave-one-out error is lower; over these draws each
    form wins somewhere, and the joint one cuts the student's weight."""
    from leafiqa.calibration.mapping import fit_linear
    from leafiqa.student.ridge import fit_ridge_loo_covariate

    chosen = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(300, 100))
        mos = x[:, :3] @ np.array([1.0, 0.7, -0.5]) + 0.3 * rng.normal(size=300)
        student = x[:, 0] + x[:, 5] + 0.1 * rng.normal(size=300)
        labelled, test = np.arange(150), np.arange(150, 300)
        basis = RidgeBasis.fit(x[labelled], FeatureScaler.fit(x))
        line = fit_linear(student[labelled], mos[labelled])
        two_stage = fit_ridge_loo(basis, mos[labelled] - line(student[labelled]), allow_none=True)
        joint = fit_ridge_loo_covariate(basis, mos[labelled], student[labelled])
        assert joint is not None and not np.isinf(two_stage.alpha)
        calibration = calibrate_prior(student[labelled], basis, mos[labelled])
        predicted = calibration(student[test], x[test])
        if joint.ridge.loo_error < two_stage.loo_error:
            chosen.append("joint")
            assert calibration.form == "joint"
            np.testing.assert_allclose(predicted, joint(student[test], x[test]), atol=1e-8)
            assert calibration.line.params[0] < line.params[0]
        else:
            chosen.append("two-stage")
            assert calibration.form == "two-stage"
            expected = line(student[test]) + two_stage(x[test])
            np.testing.assert_allclose(predicted, expected, atol=1e-8)
    assert set(chosen) == {"joint", "two-stage"}


def test_below_thirty_labels_the_joint_form_is_not_weighed() -> None:
    """The same half-right student: with 150 labels some draws pick the joint form (above);
    with 29 labels or fewer the calibration keeps the student's line and corrects only its
    residuals, whatever leave-one-out would say of the joint form — and from 30 labels the
    joint form is back among the candidates."""
    from leafiqa.calibration.prior import MIN_LABELS_FOR_JOINT

    picked_joint_at_threshold = False
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(300, 100))
        mos = x[:, :3] @ np.array([1.0, 0.7, -0.5]) + 0.3 * rng.normal(size=300)
        student = x[:, 0] + x[:, 5] + 0.1 * rng.normal(size=300)
        for n in (MIN_LABELS_FOR_JOINT - 1, MIN_LABELS_FOR_JOINT):
            labelled = np.arange(n)
            basis = RidgeBasis.fit(x[labelled], FeatureScaler.fit(x))
            calibration = calibrate_prior(student[labelled], basis, mos[labelled],
                                          min_gain_se=0)
            if n < MIN_LABELS_FOR_JOINT:
                assert calibration.form != "joint"
            else:
                picked_joint_at_threshold |= calibration.form == "joint"
    assert picked_joint_at_threshold


@pytest.mark.parametrize("quality_in_small_block", [True, False])
def test_the_labels_choose_the_feature_prior(quality_in_small_block: bool) -> None:
    """Two priors: blocks [3, 57] balanced, or every feature alike. Quality carried by the
    small block is found with fewer labels under the balanced prior; quality spread over the
    large block under the per-feature one. Leave-one-out picks the better of the two."""
    from leafiqa.student.ridge import feature_priors

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 60))
    quality = (x[:, :3].sum(axis=1) if quality_in_small_block
               else x[:, 3:].sum(axis=1) / np.sqrt(19))
    mos = quality + 0.5 * rng.normal(size=300)
    student = rng.normal(size=300)  # a student that knows nothing: the correction decides
    labelled, test = np.arange(60), np.arange(60, 300)
    balanced, per_feature = (RidgeBasis.fit(x[labelled], scaler)
                             for scaler in feature_priors(x, [3, 57]))
    both = calibrate_prior(student[labelled], [balanced, per_feature], mos[labelled])
    expected = balanced if quality_in_small_block else per_feature
    alone = calibrate_prior(student[labelled], expected, mos[labelled])
    np.testing.assert_allclose(both(student[test], x[test]), alone(student[test], x[test]))
    assert both.prior == ("blocks" if quality_in_small_block else "features")


def test_block_scales_give_every_block_the_same_prior_share() -> None:
    from leafiqa.student.ridge import block_scales

    blocks = [24, 24, 40, 1280]
    scales = block_scales(blocks, sum(blocks))
    shares = [float((part**2).sum()) for part in np.split(scales, np.cumsum(blocks)[:-1])]
    assert shares == pytest.approx([shares[0]] * 4)
    x = np.random.default_rng(0).normal(size=(50, sum(blocks))) * np.linspace(0.1, 9, 1368)
    scaled = FeatureScaler.fit(x, blocks)(x)  # standardised, then each block its share
    variances = [float(part.var(axis=0).sum())
                 for part in np.split(scaled, np.cumsum(blocks)[:-1], axis=1)]
    assert variances == pytest.approx([sum(blocks) / 4] * 4, rel=1e-4)
    with pytest.raises(ValueError, match="do not cover 1369 features"):
        block_scales(blocks, 1369)


def test_below_thirty_labels_a_correction_must_keep_the_pools_ranking() -> None:
    """A student that knows one factor of quality out of three: 24 labels find a correction
    that would reorder the pool far from the student's ranking. Without a pool sample it is
    kept; with one it is refused (the line alone) below 30 labels, and from 30 labels the rule
    no longer applies."""
    from leafiqa.calibration.prior import (
        CLEAR_GAIN_BELOW,
        MIN_POOL_AGREEMENT,
        PoolSample,
        keeps_pool_ranking,
    )

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 40))
    mos = x[:, :3] @ np.array([0.5, 1.0, 1.0]) + 0.1 * rng.normal(size=600)
    student = x[:, 0] + 0.05 * rng.normal(size=600)
    scaler = FeatureScaler.fit(x)
    pool = PoolSample(student[100:], x[100:])
    for n in (24, CLEAR_GAIN_BELOW):
        labelled = np.arange(n)
        basis = RidgeBasis.fit(x[labelled], scaler)
        free = calibrate_prior(student[labelled], basis, mos[labelled], min_gain_se=0)
        assert free.correction is not None
        agreement = spearmanr(pool.scores, free(pool.scores, pool.features))[0]
        assert agreement < MIN_POOL_AGREEMENT  # the correction overturns the student
        guarded = calibrate_prior(student[labelled], basis, mos[labelled], min_gain_se=0,
                                  pool=pool)
        if n < CLEAR_GAIN_BELOW:
            assert guarded.correction is None and guarded.form == "line"
            assert guarded.reason.startswith(f"the {free.form} correction would reorder the "
                                             f"pool below Spearman {MIN_POOL_AGREEMENT:g}")
            assert not keeps_pool_ranking(free, pool, n)
            # calibration.min_pool_agreement = 0 turns the rule off
            off = PoolSample(pool.scores, pool.features, min_agreement=0.0)
            assert calibrate_prior(student[labelled], basis, mos[labelled], min_gain_se=0,
                                   pool=off).correction is not None
        else:
            assert guarded.correction is not None and keeps_pool_ranking(free, pool, n)


def test_a_correction_that_refines_the_student_passes_the_pool_rule() -> None:
    """A student that knows quality but for a small factor: the few labels' correction keeps
    the pool's ranking (agreement ≥ the rule's) and is kept."""
    from leafiqa.calibration.prior import MIN_POOL_AGREEMENT, PoolSample

    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 40))
    mos = x[:, :2] @ np.array([1.0, 0.3]) + 0.05 * rng.normal(size=600)
    student = x[:, 0] + 0.02 * rng.normal(size=600)
    pool = PoolSample(student[100:], x[100:])
    labelled = np.arange(24)
    calibration = calibrate_prior(student[labelled], RidgeBasis.fit(x[labelled],
                                                                    FeatureScaler.fit(x)),
                                  mos[labelled], min_gain_se=0, pool=pool)
    assert calibration.correction is not None
    assert spearmanr(pool.scores, calibration(pool.scores, pool.features))[0] >= (
        MIN_POOL_AGREEMENT)


def test_a_calibration_predicts_a_streamed_pool_as_it_predicts_an_array() -> None:
    from leafiqa.student.ridge import FeatureSource

    rng, x, quality = synthetic()
    student = x[:, 0] + 0.1 * rng.normal(size=quality.size)
    mos = quality + 0.1 * rng.normal(size=quality.size)
    labelled = np.arange(120)
    calibration = calibrate_prior(student[labelled], RidgeBasis.fit(x[labelled],
                                                                    FeatureScaler.fit(x)),
                                  mos[labelled])
    assert calibration.correction is not None
    pool = np.arange(120, 400)
    source = FeatureSource.of(x, chunk_rows=64).subset(pool)
    np.testing.assert_allclose(calibration.predict_source(student[pool], source),
                               calibration(student[pool], x[pool]))


def test_the_kept_form_is_said_in_words() -> None:
    from leafiqa.calibration.prior import describe_correction

    assert describe_correction("line", float("inf"), "", "fewer than 16 labels") == (
        "the line alone onto the MOS, no correction (fewer than 16 labels)")
    assert describe_correction("two-stage", 316.2, "blocks", logistic=True) == (
        "the two-stage correction (a ridge on the line's residuals; penalty α 316, blocks "
        "prior); then the 4-parameter logistic")
