"""``leaf calibrate`` takes labels only as they are meant (issue 32, item 7): a MOS off the
range the data set or the rating study declares is one error naming the file and column; a
budget above the labels there are, rows without a MOS and one name given two MOS are each
said, with what was used."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_bad_inputs import assert_user_error, invoke
from tests.conftest import make_image


def test_a_label_off_the_study_scale_is_one_error(tmp_path: Path, model_file: Path) -> None:
    photos = tmp_path / "photos"
    for k in range(4):
        make_image(photos / f"p{k}.jpg", seed=k)
    assert invoke("rate", "create", tmp_path / "study", "--images", photos, "--raters", "1",
                  "--repeats", "0").exit_code == 0
    from leafiqa.labelling.study import Study

    study = Study(tmp_path / "study")
    (rater,) = study.raters()
    for step in range(rater.total):
        study.record(rater.id, step, float(1 + step))
    labels = photos / "labels.csv"
    exported = invoke("ratings", "export", tmp_path / "study", "--out", labels, "--method",
                      "mean")
    assert exported.exit_code == 0, exported.output
    assert (photos / "labels.csv.scale.json").is_file()
    make_image(photos / "p9.jpg", seed=9)
    with labels.open("a") as handle:  # a typo, or a label from another scale
        handle.write("p9.jpg,1000000000,,1\n")
    out = tmp_path / "model.safetensors"
    assert_user_error(invoke("calibrate", model_file, "--labels", labels, "--cache",
                             tmp_path / "cache", "--out", out),
                      "labels.csv", "column 'mos'", "1 MOS outside the range 1–5",
                      "labels.csv.scale.json", "acr", "p9.jpg=1e+09")
    assert not out.exists()


def test_a_label_off_the_data_set_scale_is_one_error(tmp_path: Path, model_file: Path) -> None:
    data = tmp_path / "clive"
    for k in range(6):
        make_image(data / "images" / f"c{k}.jpg", seed=k)
    (data / "data.csv").write_text("name,mos,std\n" + "".join(
        f"c{k}.jpg,{1e9 if k == 2 else 20 + 10 * k},5\n" for k in range(6)))
    (data / "splits.csv").write_text("name,split_1\n" + "".join(
        f"c{k}.jpg,{'test' if k == 5 else 'train'}\n" for k in range(6)))
    out = tmp_path / "model.safetensors"
    assert_user_error(invoke("calibrate", model_file, "--labels", data, "--cache",
                             tmp_path / "cache", "--out", out),
                      "data.csv", "column 'mos'", "outside the range 0–100",
                      "the clive data set", "c2.jpg=1e+09")
    assert not out.exists()


def test_fewer_labels_than_the_budget_and_odd_rows_are_said(tmp_path: Path,
                                                          model_file: Path) -> None:
    photos = tmp_path / "photos"
    for k in range(5):
        make_image(photos / f"p{k}.jpg", seed=k, blur=k)
    labels = photos / "labels.csv"
    labels.write_text("name,mos\np0.jpg,4.5\np1.jpg,2\np1.jpg,4\np2.jpg,1.5\np3.jpg,nan\n"
                      "p4.jpg,\n")
    out = tmp_path / "model.safetensors"
    result = invoke("calibrate", model_file, "--labels", labels, "--budget", "24", "--cache",
                    tmp_path / "cache", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    output = " ".join(result.output.split())
    assert "warning: --budget 24: only 3 labelled images; calibrating on those 3" in output
    assert "2 row(s) have no MOS (empty or NaN) and are not labels: p3.jpg, p4.jpg" in output
    assert "'p1.jpg' has 2 different MOS (2, 4): their mean 3 is used" in output
