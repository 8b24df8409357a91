"""The accuracy estimate from the labels alone: weighted rank correlations are what they claim,
the two-stage form's leave-one-out refits its line (against brute force), and on synthetic
data the estimate's interval covers the model's accuracy on new images."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr

from leafiqa.calibration.estimate import (
    AccuracyEstimate,
    estimate_accuracy,
    weighted_pearson,
    weighted_spearman,
)
from leafiqa.calibration.mapping import fit_linear
from leafiqa.calibration.prior import calibrate_prior, fit_two_stage_loo
from leafiqa.student.ridge import FeatureScaler, RidgeBasis, fit_ridge_loo


def test_weighted_correlations_match_scipy_and_duplicating_rows() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=30), 1)  # ties
    y = x + rng.normal(size=30)
    ones = np.ones(30)
    assert np.isclose(weighted_spearman(x, y, ones), spearmanr(x, y).statistic)
    assert np.isclose(weighted_pearson(x, y, ones), pearsonr(x, y).statistic)
    weights = rng.integers(1, 4, size=30).astype(float)
    repeated = np.repeat(np.arange(30), weights.astype(int))
    assert np.isclose(weighted_spearman(x, y, weights),
                      spearmanr(x[repeated], y[repeated]).statistic)


def test_two_stage_leave_one_out_refits_the_line() -> None:
    rng = np.random.default_rng(1)
    n = 40
    features = rng.normal(size=(n, 60))
    scores = rng.normal(size=n)
    mos = scores + 0.8 * features[:, 0] + 0.5 * rng.normal(size=n)
    scaler = FeatureScaler.fit(features)
    line = fit_linear(scores, mos)
    fit = fit_two_stage_loo(RidgeBasis.fit(features, scaler), scores, mos, mos - line(scores))
    assert fit is not None
    errors = []
    for i in range(n):  # brute force: the line and the ridge refitted without image i
        keep = np.arange(n) != i
        refit = fit_linear(scores[keep], mos[keep])
        ridge = fit_ridge_loo(RidgeBasis.fit(features[keep], scaler),
                              mos[keep] - refit(scores[keep]), np.array([fit.alpha]))
        errors.append(mos[i] - refit(scores[i:i + 1])[0] - ridge(features[i:i + 1])[0])
    assert abs(fit.loo_error / np.mean(np.square(errors)) - 1) < 0.02
    held_line = fit_ridge_loo(RidgeBasis.fit(features, scaler), mos - line(scores),
                              np.array([fit.alpha]))
    assert held_line.loo_error < fit.loo_error  # the old, fixed-line error flattered


def world(seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images whose MOS the student ranks imperfectly; the features see part of the rest."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 30))
    student = features[:, 0] + 0.6 * rng.normal(size=n)
    mos = features[:, 0] + 0.5 * features[:, 1] + 0.4 * rng.normal(size=n)
    return features, student, mos


def test_the_interval_covers_the_accuracy_on_new_images() -> None:
    covered, errors = 0, []
    for seed in range(12):
        features, student, mos = world(seed)
        scalers = [FeatureScaler.fit(features)]
        labels = np.random.default_rng(100 + seed).choice(mos.size, 60, replace=False)
        estimate = estimate_accuracy(student[labels], features[labels], scalers, mos[labels],
                                     seed=seed)
        assert isinstance(estimate, AccuracyEstimate) and estimate.n_labels == 60
        calibration = calibrate_prior(student[labels],
                                      [RidgeBasis.fit(features[labels], scalers[0])],
                                      mos[labels])
        new = np.setdiff1d(np.arange(mos.size), labels)
        truth = spearmanr(calibration(student[new], features[new]), mos[new]).statistic
        covered += estimate.srcc_low <= truth <= estimate.srcc_high
        errors.append(estimate.srcc - truth)
    assert covered >= 9  # a 90 % interval, 12 draws
    assert abs(np.mean(errors)) < 0.05


def test_too_few_labels_give_no_estimate() -> None:
    features, student, mos = world(0, 50)
    scalers = [FeatureScaler.fit(features)]
    assert estimate_accuracy(student[:4], features[:4], scalers, mos[:4]) is None
    assert estimate_accuracy(student[:6], features[:6], scalers, np.ones(6)) is None


def test_an_interval_for_a_finite_test_set_is_wider() -> None:
    estimate = AccuracyEstimate(0.7, 0.6, 0.8, 0.7, 0.6, 0.8, 50)
    low, high = estimate.srcc_interval_for(100)
    assert low < 0.6 and high > 0.8 and np.isclose((low + high) / 2, 0.7)
    far = estimate.srcc_interval_for(10**7)
    assert np.allclose(far, (0.6, 0.8), atol=1e-3)


def test_out_of_sample_student_scores_keep_a_distilled_student_from_flattering() -> None:
    """A student distilled on the images it is then labelled on fits the teacher there,
    including what the teacher sees of MOS beyond the features, so in-sample scores rank MOS
    better on those images than on new ones. Estimated from the ridge's leave-one-out scores the
    estimate is right; from the in-sample scores it flatters."""
    in_sample, unseen = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n, dim = 600, 400
        features = rng.normal(size=(n, dim))
        seen_by_features = features @ rng.normal(size=dim) / np.sqrt(dim)
        beyond = rng.normal(size=n)  # quality the teacher sees and the features do not show
        teacher = seen_by_features + beyond + 0.5 * rng.normal(size=n)
        mos = seen_by_features + beyond + 0.5 * rng.normal(size=n)
        train, test = np.arange(400), np.arange(400, n)
        scaler = FeatureScaler.fit(features[train])
        fit = fit_ridge_loo(RidgeBasis.fit(features[train], scaler), teacher[train])
        student = fit(features)
        truth = spearmanr(student[test], mos[test]).statistic
        labels = rng.choice(train, 60, replace=False)
        for scores, errors in ((student[labels], in_sample),
                               (fit.loo_predictions[labels], unseen)):
            estimate = estimate_accuracy(scores, features[labels], [scaler], mos[labels],
                                         correct=False, seed=seed)
            assert estimate is not None
            errors.append(estimate.srcc - truth)
    assert np.mean(in_sample) > np.mean(unseen) + 0.05
    assert abs(np.mean(unseen)) < 0.05


def test_each_fold_refits_on_the_scores_the_model_was_calibrated_on() -> None:
    """``fit_scores``: every fold's calibration is fitted on the labelled images' scores as the
    model's calibration saw them, and predicts its held-out labels from their scores as new
    images. Fitted on scores shifted up by c, each fold's line (slope b > 0) predicts the same
    held-out scores lower by b·c; fitted on the new-image scores themselves, it is the
    default."""
    from leafiqa.calibration.estimate import cross_validate

    rng = np.random.default_rng(5)
    features = rng.normal(size=(80, 20))
    new_image = features[:, 0] + 0.3 * rng.normal(size=80)
    mos = 3 + features[:, 0] + 0.3 * rng.normal(size=80)
    scaler = FeatureScaler.fit(features)
    plain = cross_validate(new_image, features, [scaler], mos, correct=False)
    same = cross_validate(new_image, features, [scaler], mos, correct=False,
                          fit_scores=new_image)
    np.testing.assert_allclose(same.line_oof, plain.line_oof)
    shifted = cross_validate(new_image, features, [scaler], mos, correct=False,
                             fit_scores=new_image + 2.0)
    assert (shifted.line_oof < plain.line_oof - 0.5).all()
    np.testing.assert_allclose(shifted.line, plain.line)  # the first term: new-image scores


def test_shared_weights_estimate_better_than_voronoi_cells() -> None:
    """Labels chosen by the ``variance`` design, re-weighted for the pool they stand for: with
    each pool image shared among its 5 nearest labels the estimate errs less than with each
    label's Voronoi cell, whose counts in 8 dimensions hang on which label happens to be
    nearest."""
    from leafiqa.labelling.designs import embed, representation_weights, select_order

    errors: dict[int, list[float]] = {5: [], 1: []}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        n = 1500
        features = rng.normal(size=(n, 8))
        student = features[:, 0] + 0.8 * rng.normal(size=n)
        mos = features[:, 0] + 0.6 * rng.normal(size=n)
        z = embed(features, dims=8)
        labels = select_order(n, 60, strategy="variance", embedding=z, teacher_scores=student)
        truth = spearmanr(student, mos).statistic  # no correction: the student's ranking
        for neighbours, errs in errors.items():
            estimate = estimate_accuracy(
                student[labels], features[labels], [FeatureScaler.fit(features)], mos[labels],
                correct=False, weights=representation_weights(z, labels, neighbours), seed=seed)
            assert estimate is not None
            errs.append(estimate.srcc - truth)
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errors.items()}
    assert rmse[5] < 0.8 * rmse[1], rmse


def test_noisy_labels_corrected_for_attenuation_estimate_the_panel_accuracy() -> None:
    """Labels of a few raters carry their own noise, which attenuates every correlation against
    them: uncorrected, the estimate under-promises against the same images' estimate from
    exact labels (a large panel's); with each label's noise given, its correction for
    attenuation recovers it on average (paired on the same images, so that which images were
    labelled does not blur the comparison)."""
    plain, corrected = [], []
    for seed in range(16):
        features, student, mos = world(seed)
        scalers = [FeatureScaler.fit(features)]
        rng = np.random.default_rng(200 + seed)
        labels = rng.choice(mos.size, 80, replace=False)
        noise = np.full(labels.size, 0.8)  # a few raters' error variance on these labels
        noisy = mos[labels] + rng.normal(size=labels.size) * np.sqrt(noise)
        exact = estimate_accuracy(student[labels], features[labels], scalers, mos[labels],
                                  correct=False, seed=seed)
        assert exact is not None and exact.reliability is None
        for given, errors in ((None, plain), (noise, corrected)):
            estimate = estimate_accuracy(student[labels], features[labels], scalers, noisy,
                                         correct=False, label_noise=given, seed=seed)
            assert estimate is not None
            errors.append(estimate.srcc - exact.srcc)
            assert (estimate.reliability is None) == (given is None)
    assert np.mean(plain) < -0.1
    assert abs(np.mean(corrected)) < 0.04, np.mean(corrected)


def test_reliability_is_the_share_of_variance_that_is_not_noise() -> None:
    from leafiqa.calibration.estimate import MIN_RELIABILITY, reliability

    mos = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # variance 2
    ones = np.ones(5)
    assert np.isclose(reliability(mos, np.full(5, 0.5), ones), 0.75)
    # unknown noise (one rater) is left out of the mean; none known: exact labels
    assert np.isclose(reliability(mos, np.array([0.5, np.nan, 0.5, 0.5, 0.5]), ones), 0.75)
    assert reliability(mos, np.full(5, np.nan), ones) == 1.0
    assert reliability(mos, np.full(5, 10.0), ones) == MIN_RELIABILITY
    summary = AccuracyEstimate(0.7, 0.6, 0.8, 0.7, 0.6, 0.8, 50, reliability=0.75,
                               target="pool").summary()
    assert "pool's unlabelled images" in summary and "reliability 0.75" in summary


def test_the_learning_curve_sees_a_correction_still_growing_and_none() -> None:
    """Where the features carry what the student misses, a correction's gain grows with the
    labels, and the curve expects the next labels to add more than where they carry nothing;
    below twice the labels a correction needs, it says it cannot tell."""
    from leafiqa.calibration.estimate import learning_curve

    rng = np.random.default_rng(3)
    n = 3000
    features = rng.normal(size=(n, 40))
    student = features[:, 0] + 0.5 * rng.normal(size=n)
    scalers = [FeatureScaler.fit(features)]
    labels = rng.choice(n, 90, replace=False)
    gains = {}
    for name, mos in (("features help", student + features[:, 1:6].sum(axis=1) * 0.6),
                      ("nothing to add", student + 0.3 * rng.normal(size=n))):
        estimate = estimate_accuracy(student[labels], features[labels], scalers, mos[labels])
        assert estimate is not None
        curve = learning_curve(student[labels], features[labels], scalers, mos[labels],
                               estimate, 90)
        assert curve.measurable and curve.sizes == [45, 68, 90]
        assert curve.gain_low <= curve.expected_gain <= curve.gain_high
        assert np.isclose(curve.next_width, curve.width / np.sqrt(2))
        gains[name] = curve.expected_gain
    assert gains["features help"] > gains["nothing to add"] + 0.01, gains
    few = estimate_accuracy(student[labels[:24]], features[labels[:24]], scalers,
                            student[labels[:24]] + rng.normal(size=24))
    assert few is not None
    curve = learning_curve(student[labels[:24]], features[labels[:24]], scalers,
                           student[labels[:24]] + rng.normal(size=24), few, 24)
    assert not curve.measurable and "cannot be read off 24 labels" in curve.summary()
