"""``methods.unseen_scores``: the estimate sees the student's training images as new images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from leafiqa.experiments.methods import unseen_scores
from leafiqa.student.head import QualityHead


def test_training_images_get_their_out_of_sample_scores_and_test_images_keep_theirs() -> None:
    ws = SimpleNamespace(distill_rows=np.array([0, 2, 3]))  # the images distilled on
    head = QualityHead(4, hidden=0, components=1)
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    head.out_of_sample = np.array([0.5, 2.5, 3.5])
    np.testing.assert_array_equal(unseen_scores(head, scores, ws),  # type: ignore[arg-type]
                                  [0.5, 2.0, 2.5, 3.5, 5.0])
    assert scores[0] == 1.0  # the model's own scores are untouched


def test_a_head_without_out_of_sample_scores_keeps_its_scores() -> None:
    ws = SimpleNamespace(distill_rows=np.array([0, 1]))
    head = QualityHead(4, hidden=0, components=1)
    scores = np.array([1.0, 2.0, 3.0])
    assert unseen_scores(head, scores, ws) is scores  # type: ignore[arg-type]
    head.out_of_sample = np.array([9.0])  # distilled on other images: not these
    assert unseen_scores(head, scores, ws) is scores  # type: ignore[arg-type]


def test_the_pool_estimate_reads_the_scores_as_distilled() -> None:
    """Under the pool protocol the images the estimate speaks for were distilled on like the
    labelled ones: their in-sample scores stand; under "new" the training images get their
    out-of-sample ones."""
    from leafiqa.experiments.methods import target_scores

    head = QualityHead(4, hidden=0, components=1)
    head.out_of_sample = np.array([0.5, 2.5, 3.5])
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    pool = SimpleNamespace(protocol="pool", distill_rows=np.array([0, 2, 3]))
    new = SimpleNamespace(protocol="new", distill_rows=np.array([0, 2, 3]))
    assert target_scores(head, scores, pool) is scores  # type: ignore[arg-type]
    np.testing.assert_array_equal(target_scores(head, scores, new),  # type: ignore[arg-type]
                                  [0.5, 2.0, 2.5, 3.5, 5.0])
