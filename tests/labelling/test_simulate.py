"""The rater simulator the screening bench and ``leaf bench`` draw studies from: every rater
rates every study image once, planned repeats, gold images last with the owner's answer, and
each kind of rater behaves as named on both scales."""

from __future__ import annotations

import numpy as np
import pytest

from leafiqa.labelling.simulate import RaterSpec, owner_gold_answer, simulate_panel, to_acr


def test_a_panel_has_every_vote_repeats_and_gold_last() -> None:
    rng = np.random.default_rng(0)
    truth = np.linspace(1.2, 4.8, 20)
    specs = [RaterSpec("honest", 0.5, 0.3), RaterSpec("random"), RaterSpec("one-button"),
             RaterSpec("inverse", 0.0, 0.3)]
    votes, true = simulate_panel(truth, np.full(20, 0.3), specs, gold=3, repeats=4, rng=rng,
                                 gold_truth=np.array([4.4, 1.3, 4.6]))
    assert votes.scores.shape == (23, 4, 2) and votes.raters == ["honest0", "random1",
                                                                 "one-button2", "inverse3"]
    assert votes.names[:20] == [f"img{k}" for k in range(20)] and votes.names[20] == "gold0"
    assert np.isnan(votes.gold[:20]).all() and list(votes.gold[20:]) == [5.0, 1.0, 5.0]
    assert (~np.isnan(votes.scores[:, :, 0])).all()  # everyone rates every row once
    again = ~np.isnan(votes.scores[:, :, 1])
    assert (again.sum(axis=0) == 4).all() and not again[20:].any()  # repeats: study images
    assert set(np.unique(votes.scores[~np.isnan(votes.scores)])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (true == truth).all()
    first = votes.scores[:20, :, 0]
    assert np.corrcoef(first[:, 0], truth)[0, 1] > 0.8
    assert np.corrcoef(first[:, 3], truth)[0, 1] < -0.8  # reads the scale the wrong way
    assert np.ptp(votes.scores[:, 2][~np.isnan(votes.scores[:, 2])]) == 0  # one button
    assert np.mean(first[:, 0] - truth) == pytest.approx(0.5, abs=0.25)  # lenient by 0.5


def test_the_slider_is_on_0_to_100_and_its_one_button_leaves_it_at_50() -> None:
    rng = np.random.default_rng(1)
    truth = np.linspace(1.5, 4.5, 30)
    votes, true = simulate_panel(truth, np.zeros(30), [RaterSpec("honest", 0.0, 0.0),
                                                       RaterSpec("one-button")],
                                 scale="slider", gold=2, repeats=0, rng=rng)
    assert np.allclose(true, (truth - 1) * 25) and np.allclose(votes.scores[:30, 0, 0],
                                                               np.round(true))
    assert (votes.scores[:, 1, 0] == 50).all()
    assert list(votes.gold[30:]) == [100.0, 0.0]  # default gold: the study's ends, at 5 and 1


def test_owner_answers_and_acr_mapping() -> None:
    assert list(owner_gold_answer(np.array([4.3, 1.6, 3.0]))) == [5.0, 1.0, 5.0]
    mos, spread = to_acr(np.array([0.0, 50.0, 100.0]), np.array([25.0, 0, 0]), 0.0, 100.0)
    assert list(mos) == [1.0, 3.0, 5.0] and spread[0] == 1.0
    with pytest.raises(ValueError, match="kind"):
        RaterSpec("sleepy")
