"""Label selection: every design picks new, distinct images in the order to ask, rounds never
repeat an image, and each design does what it is for (k-center: far apart; variance: the line
and the typical images first; spread: the whole teacher range)."""

from __future__ import annotations

import numpy as np
import pytest

from leafiqa.labelling.designs import (
    STRATEGIES,
    embed,
    representation_weights,
    select_among_labelled,
    select_labels,
    select_order,
    select_rounds,
)


def pool(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 40))
    teacher = features[:, 0] + 0.3 * rng.normal(size=n)
    return features, teacher


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_design_picks_distinct_new_images(strategy: str) -> None:
    features, teacher = pool()
    done = [3, 7, 11]
    picks = select_order(len(teacher), 15, strategy=strategy, teacher_scores=teacher,
                         features=features, labelled=done, seed=1)
    assert picks.size == 15 and np.unique(picks).size == 15
    assert not set(picks) & set(done)
    again = select_order(len(teacher), 15, strategy=strategy, teacher_scores=teacher,
                         features=features, labelled=done, seed=1)
    assert np.array_equal(picks, again)  # reproducible from the seed
    # asking for more than the pool has gives the rest of it
    rest = select_order(20, 50, strategy=strategy, teacher_scores=teacher[:20],
                        features=features[:20], labelled=done, seed=1)
    assert sorted(rest) == sorted(set(range(20)) - set(done))


def test_random_keeps_the_draw_runs_had_before() -> None:
    picked = select_labels(100, 10, strategy="random", seed=4)
    expected = np.sort(np.random.default_rng(4).choice(100, size=10, replace=False))
    assert np.array_equal(picked, expected)


def test_spread_covers_the_teacher_range() -> None:
    _, teacher = pool(200)
    picks = select_labels(200, 10, strategy="spread", teacher_scores=teacher, seed=0)
    ranks = np.argsort(np.argsort(teacher))[picks]
    assert np.array_equal(np.sort(ranks) // 20, np.arange(10))  # one per decile


def test_kcenter_goes_farthest_first() -> None:
    features, teacher = pool()
    z = embed(features)
    picks = select_order(len(teacher), 5, strategy="kcenter", teacher_scores=teacher,
                         features=features, labelled=[0])
    distance = ((z - z[0]) ** 2).sum(axis=1)
    assert picks[0] == int(np.argmax(distance))


def test_variance_prefers_typical_images_to_an_outlier() -> None:
    features, teacher = pool(150)
    features[17] *= 25  # far from everything in feature space, ordinary for the teacher
    teacher[17] = float(np.median(teacher))
    variance = select_order(150, 12, strategy="variance", teacher_scores=teacher,
                            features=features)
    kcenter = select_order(150, 12, strategy="kcenter",
                           teacher_scores=teacher, features=features, labelled=[0])
    assert 17 in kcenter and 17 not in variance
    # the calibration line first: its first picks span the teacher's range
    first = teacher[variance[:4]]
    assert first.max() - first.min() > 0.6 * np.ptp(teacher)


@pytest.mark.parametrize("strategy", ["kcenter", "variance", "spread", "random"])
def test_rounds_never_repeat_and_greedy_rounds_equal_one_go(strategy: str) -> None:
    features, teacher = pool()
    rounds = select_rounds(len(teacher), [5, 5, 10], strategy=strategy, teacher_scores=teacher,
                           features=features, seed=2)
    assert rounds.size == 20 and np.unique(rounds).size == 20
    if strategy == "variance":  # a greedy design does not depend on where rounds end
        once = select_labels(len(teacher), 20, strategy=strategy, teacher_scores=teacher,
                             features=features, seed=2)
        assert np.array_equal(rounds, once)


def test_bad_requests_say_what_is_missing() -> None:
    features, teacher = pool()
    with pytest.raises(ValueError, match="unknown label selection 'best'"):
        select_order(10, 2, strategy="best")
    with pytest.raises(ValueError, match="needs a teacher score"):
        select_order(10, 2, strategy="spread")
    with pytest.raises(ValueError, match="some have none"):
        select_order(3, 2, strategy="spread", teacher_scores=[0.1, np.nan, 0.3])
    # the variance design reads an unjudged image as an average one
    assert select_order(3, 2, strategy="variance", teacher_scores=[0.1, np.nan, 0.3],
                        features=features[:3]).size == 2
    with pytest.raises(ValueError, match="needs the features"):
        select_order(len(teacher), 2, strategy="kcenter", teacher_scores=teacher)
    with pytest.raises(ValueError, match="out of range"):
        select_order(10, 2, labelled=[12])


def test_representation_weights_count_the_pool_each_label_stands_for() -> None:
    z = np.concatenate([np.zeros((30, 2)), np.ones((10, 2)) * 5, [[100.0, 100.0]]])
    z += np.random.default_rng(0).normal(scale=0.1, size=z.shape)
    weights = representation_weights(z, [0, 30, 40], neighbours=1)  # Voronoi cells
    assert np.allclose(weights * 41 / 3, [30, 10, 1])


def test_shared_representation_weights_keep_each_cluster_its_share() -> None:
    """Each pool image shared among its 5 nearest labels: a 60-image cluster's 6 labels stand
    for its 60 images, a 20-image cluster's 6 for its 20 and 4/5 of the outlier, which keeps
    1/5 of itself (floored: a labelled image stands at least for itself)."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(size=(60, 2)), 5 + rng.normal(size=(20, 2)),
                        [[100.0, 100.0]]])
    labelled = np.array([*range(6), *range(60, 66), 80])
    weights = representation_weights(z, labelled)  # mean 1: the 81.8 images over 13 labels
    stands_for = weights * (60 + 20.8 + 1) / labelled.size
    assert np.allclose([stands_for[:6].sum(), stands_for[6:12].sum(), stands_for[12]],
                       [60, 20.8, 1])


class Chunks:
    """Rows read in chunks (``selection.RowChunks``), recording each read's size."""

    def __init__(self, features: np.ndarray, chunk_rows: int) -> None:
        self.features, self.chunk_rows = features, chunk_rows
        self.n_rows, self.n_features = features.shape
        self.reads: list[int] = []

    def read(self, start: int, stop: int) -> np.ndarray:
        self.reads.append(stop - start)
        return self.features[start:stop]


@pytest.mark.parametrize("n", [30, 90])  # fewer images than features (Gram), more (scatter)
def test_streamed_embedding_is_the_in_memory_one_and_picks_the_same_images(n: int) -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(n, 8)) @ rng.normal(size=(8, 60)) + 0.1 * rng.normal(
        size=(n, 60))
    teacher = features[:, 0] + 0.3 * rng.normal(size=n)
    source = Chunks(features, chunk_rows=16)
    streamed, whole = embed(source, dims=6), embed(features, dims=6)
    assert max(source.reads) <= 16
    signs = np.sign((streamed * whole).sum(axis=0))  # an axis's sign is arbitrary
    np.testing.assert_allclose(streamed * signs, whole, rtol=1e-7,
                               atol=1e-9 * np.abs(whole).max())
    for strategy in ("kcenter", "variance"):
        picks = [select_order(n, 10, strategy=strategy, teacher_scores=teacher, embedding=z,
                              labelled=[2], seed=4) for z in (streamed, whole)]
        np.testing.assert_array_equal(picks[0], picks[1])
    np.testing.assert_allclose(representation_weights(streamed, [1, 5, 9]),
                               representation_weights(whole, [1, 5, 9]))


def test_labels_are_drawn_only_from_images_with_mos() -> None:
    mos = np.array([np.nan, 2.0, np.nan, 3.0, 1.0, np.nan, 4.0])
    picked = select_among_labelled(mos, 3, seed=0)
    assert len(picked) == 3 and not np.isnan(mos[picked]).any()
    assert sorted(select_among_labelled(mos, 10).tolist()) == [1, 3, 4, 6]
    spread = select_among_labelled(mos, 2, strategy="spread",
                                   teacher_scores=np.arange(7.0), seed=0)
    assert not np.isnan(mos[spread]).any()
