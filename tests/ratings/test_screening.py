"""From votes to MOS: the consistency checks catch careless raters, screening beats a plain
mean on simulated studies with a known truth, and the label file reads back as LEAF labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.data.readers import read_plain_csv
from leafiqa.ratings.screening import (
    Votes,
    check_raters,
    estimate,
    votes_from_study,
    write_labels,
)
from leafiqa.ratings.simulate import Simulation, compare
from leafiqa.ratings.study import Study, StudySettings

pytest.importorskip("sureal", reason="rating export needs sureal (pip install 'leaf-iqa[rate]')")


def test_checks_flag_one_button_random_and_gold_failures() -> None:
    rng = np.random.default_rng(0)
    truth = np.linspace(1, 5, 20)
    scores = np.full((22, 4, 2), np.nan)
    for s in range(2):  # two honest raters
        scores[:20, s, 0] = np.clip(np.round(truth + rng.normal(0, .4, 20)), 1, 5)
        scores[:3, s, 1] = scores[:3, s, 0]
    scores[:20, 2, 0] = 3.0  # one button
    scores[:20, 3, 0] = rng.integers(1, 6, 20)  # random
    scores[:3, 3, 1] = [5, 1, 5]
    scores[20:, :2, 0] = [[5, 5], [1, 1]]
    scores[20:, 2:, 0] = [[3, 1], [3, 5]]
    votes = Votes([f"i{k}" for k in range(22)], ["a", "b", "one", "random"], scores,
                  np.array([np.nan] * 20 + [5.0, 1.0]))
    checks = {c.rater: c for c in check_raters(votes, StudySettings())}
    assert checks["a"].kept and checks["b"].kept
    assert any("spread" in reason for reason in checks["one"].reasons)
    assert any("gold 0/2" in reason for reason in checks["random"].reasons)
    assert checks["random"].correlation is not None and checks["random"].correlation < 0.3


def test_screening_recovers_the_true_mos_better_than_a_plain_mean() -> None:
    """Raters with bias and noise, a quarter of them careless (random or one button): the
    checks + BT.500 MOS is closer to the truth than the plain mean over 6 simulated studies."""
    rng = np.random.default_rng(7)
    truth = rng.uniform(1.0, 5.0, 400)
    ambiguity = rng.uniform(0.3, 0.7, 400)
    variants = {"mean": ("mean", False), "screened": ("bt500", True)}
    result = compare(truth, ambiguity, Simulation(images=40, raters=10, careless=0.3), seeds=6,
                     variants=variants)
    assert result["screened"]["rmse"] < result["mean"]["rmse"] - 0.05
    assert result["screened"]["srcc"] > result["mean"]["srcc"]
    assert result["screened"]["careless kept"] <= 0.2
    assert result["screened"]["honest kept"] >= 0.8


def test_export_writes_labels_leaf_reads_as_they_are(tmp_path: Path, study: Study) -> None:
    raters = [rater for rater, _ in study.add_raters(3)]
    images = {image.id: image for image in study.images()}
    level = {f"img{k}.jpg": 5 - k // 2 for k in range(8)}  # sharper = better
    level |= {"gold_good.jpg": 5, "gold_bad.jpg": 1}
    for rater in raters[:2]:
        for step in range(rater.total):
            name = images[study.step(rater.id, step).image_id].name
            study.record(rater.id, step, float(max(1, min(5, level[name] + rater.id % 2))))
    out = tmp_path / "labels" / "labels.csv"
    result = estimate(votes_from_study(study), study.settings)
    assert write_labels(study, out, result) == 8
    header = out.read_text().splitlines()[0]
    assert header == "name,mos,std,n"
    manifest = read_plain_csv(out)  # what `leaf calibrate --labels` and `leaf run` read
    assert len(manifest) == 8 and all(item.path.is_file() for item in manifest)
    by_file = {item.path.name: item for item in manifest}
    assert by_file["img0.jpg"].mos == 5.0 and by_file["img0.jpg"].std == 0.0
    assert by_file["img2.jpg"].mos == 4.5  # votes 4 and 5
    assert by_file["img2.jpg"].std == pytest.approx(np.std([4, 5], ddof=1), abs=1e-4)
    assert "gold_good.jpg" not in by_file  # gold images are not exported
    assert not list(out.parent.glob("*.partial"))


def test_export_with_no_kept_ratings_is_one_clear_error(tmp_path: Path, study: Study) -> None:
    from leafiqa.errors import DataError

    study.add_raters(1)
    with pytest.raises(DataError, match="no ratings from a kept rater yet"):
        write_labels(study, tmp_path / "labels.csv", estimate(votes_from_study(study),
                                                              study.settings))
    assert not (tmp_path / "labels.csv").exists()
