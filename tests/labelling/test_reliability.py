"""A few raters' MOS against a large panel's: the additive subject model's residual variance
gives each image's MOS error variance, whatever each rater's offset."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leafiqa.labelling.reliability import label_noise


def test_the_error_variance_of_a_complete_study_is_recovered() -> None:
    rng = np.random.default_rng(0)
    quality = rng.normal(0, 1, 400)
    offsets = np.array([0.8, -0.6, 0.1])  # harsh, lenient, neutral: no error of theirs
    votes = quality[:, None] + offsets + rng.normal(0, 0.5, (400, 3))
    noise = label_noise(votes)
    assert abs(noise.mean() - 0.25 / 3) < 0.01  # each image's own, unbiased on average
    assert noise.std() > 0.01  # an image its raters disagree on is noisier
    # the MOS's reliability: its squared correlation with the panel-free truth
    reliability = 1 - noise.mean() / votes.mean(axis=1).var()
    truth_r2 = np.corrcoef(votes.mean(axis=1), quality)[0, 1] ** 2
    assert abs(reliability - truth_r2) < 0.03


def test_missing_votes_count_per_image_and_too_few_give_nan() -> None:
    rng = np.random.default_rng(1)
    votes = rng.normal(size=(2000, 1)) + rng.normal(0, 0.6, (2000, 3))
    votes[:1000, 2] = np.nan  # half the images rated by two raters only
    noise = label_noise(votes)
    # a mean of two votes errs more than a mean of three: 0.36 / 2 against 0.36 / 3
    assert abs(noise[:1000].mean() - 0.18) < 0.02 and abs(noise[1000:].mean() - 0.12) < 0.02
    assert np.isnan(label_noise(votes[:, :1])).all()  # one rater: no error to tell
    votes[0] = np.nan
    assert np.isnan(label_noise(votes)[0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=3, max_size=3), st.integers(0, 10**6))
def test_offsets_do_not_change_the_error(offsets: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    votes = rng.normal(size=(30, 1)) + rng.normal(0, 0.4, (30, 3))
    np.testing.assert_allclose(label_noise(votes + np.array(offsets)), label_noise(votes),
                               rtol=1e-6)
