"""The label file ``leaf ratings export`` writes (``write_labels``): it never replaces the study
or one of its images, a failure leaves no file behind, names a spreadsheet would run as a
formula are written as ``./name`` (the same file for LEAF), and the study's scale is declared
beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from leafiqa.data.manifest import FORMULA_STARTS
from leafiqa.data.readers import read_plain_csv
from leafiqa.errors import DataError
from leafiqa.labelling import screening
from leafiqa.labelling.screening import estimate, votes_from_study, write_labels
from leafiqa.labelling.study import Study, StudySettings, read_image_list
from tests.conftest import make_image
from tests.labelling.conftest import make_study


def rated(study: Study, steps: int | None = None) -> Study:
    """Every rater rates ``steps`` steps (all by default) with 1..5 in turn."""
    for rater in study.raters():
        for step in range(rater.total if steps is None else steps):
            study.record(rater.id, step, float(1 + step % 5))
    return study


def mean_estimate(study: Study) -> screening.Estimate:
    return estimate(votes_from_study(study), study.settings, method="mean")


def test_the_label_file_never_replaces_the_study_or_its_images(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=4, repeats=0)
    study.add_raters(1)
    rated(study)
    before = study.path.read_bytes()
    result = mean_estimate(study)
    (tmp_path / "link.csv").symlink_to(study.path)
    os.link(study.path, tmp_path / "hard.csv")
    for out, says in ((study.path, "is the study's database"),
                      (study.folder / "labels.csv", "inside the study folder"),
                      (study.folder / "study.sqlite-wal", "inside the study folder"),
                      (tmp_path / "link.csv", "is the study's database"),
                      (tmp_path / "hard.csv", "is the study's database"),
                      (study.images()[0].path, "is the study's image 'img0.jpg'")):
        with pytest.raises(DataError, match=says):
            write_labels(study, out, result)
    assert study.path.read_bytes() == before
    assert len(Study(study.folder).ratings()) == 4
    assert sorted(p.name for p in study.folder.iterdir()) == ["study.sqlite"]


def test_a_failure_leaves_no_file_behind(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_study(tmp_path, images=3, repeats=0)
    study.add_raters(1)
    rated(study)
    result = mean_estimate(study)
    out_folder = tmp_path / "out"
    (out_folder / "labels.csv").mkdir(parents=True)
    with pytest.raises(DataError, match=r"--out .*labels.csv: is a folder"):
        write_labels(study, out_folder / "labels.csv", result)
    assert [p.name for p in out_folder.iterdir()] == ["labels.csv"]  # no labels.csv.partial
    (out_folder / "labels.csv").rmdir()
    (out_folder / "labels.csv").write_text("the labels of an earlier round\n")

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(screening.os, "replace", full_disk)
    with pytest.raises(DataError, match="cannot write it.*No space left"):
        write_labels(study, out_folder / "labels.csv", result)
    assert [p.name for p in out_folder.iterdir()] == ["labels.csv"]
    assert (out_folder / "labels.csv").read_text() == "the labels of an earlier round\n"


def test_formula_like_names_are_written_as_paths_to_the_same_files(tmp_path: Path) -> None:
    names = ["=HYPERLINK(x).jpg", "+1.jpg", "-2.jpg", "@SUM.jpg", "\tTAB.jpg", "plain.jpg"]
    for k, name in enumerate(names):
        make_image(tmp_path / "photos" / name, seed=k)
    study = Study.create(tmp_path / "study", read_image_list(tmp_path / "photos"),
                         StudySettings(repeats=0))
    study.add_raters(1)
    rated(study)
    out = tmp_path / "photos" / "labels.csv"
    assert write_labels(study, out, mean_estimate(study)) == len(names)
    lines = out.read_text(encoding="utf-8").splitlines()[1:]
    assert all(not line.lstrip('"').startswith(FORMULA_STARTS) for line in lines), lines
    assert any(line.startswith("plain.jpg,") for line in lines)  # other names as they are
    read = read_plain_csv(out)  # what `leaf calibrate --labels` reads: every file found
    assert sorted(item.path.resolve() for item in read) == sorted(
        (tmp_path / "photos" / name).resolve() for name in names)
    from leafiqa.labelling.select import rated_names

    assert sorted(rated_names(out)) == sorted(names)  # what `leaf select --labels` matches


def test_the_rows_written_and_the_scale_declared_beside_them(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=6, repeats=0, scale="slider")
    study.add_raters(1)
    rated(study, steps=4)  # two images have no vote: no row
    out = tmp_path / "labels.csv"
    rows = write_labels(study, out, mean_estimate(study))
    assert rows == 4 == len(out.read_text().splitlines()) - 1
    declared = json.loads((tmp_path / "labels.csv.scale.json").read_text())
    assert declared == {"scale": "slider", "range": [0.0, 100.0]}
