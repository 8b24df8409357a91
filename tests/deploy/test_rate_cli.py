"""``leaf rate`` and ``leaf ratings export`` from the command line: a study from a `leaf select`
style list, one-line errors that change nothing, and a label file `leaf calibrate` takes as is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leafiqa.ratings.study import Study
from tests.conftest import make_image
from tests.deploy.test_bad_inputs_cli import assert_user_error, invoke


def photos(folder: Path, count: int = 8) -> Path:
    for k in range(count):
        make_image(folder / f"p{k}.jpg", seed=k, blur=k * 0.5)
    (folder / "gold.csv").write_text("name,value\ngood.jpg,5\nbad.jpg,1\n")
    make_image(folder / "good.jpg", seed=50)
    make_image(folder / "bad.jpg", seed=51, blur=6)
    (folder / "selected.csv").write_text("name\n" + "".join(f"p{k}.jpg\n"
                                                             for k in range(count)))
    return folder


def test_create_status_and_export(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos")
    result = invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
                    "--gold", folder / "gold.csv", "--raters", "2", "--repeats", "1")
    assert result.exit_code == 0, result.output
    links = re.findall(r"http://127\.0\.0\.1:8001/r/([\w-]+)", result.output)
    assert len(links) == 2 and all(len(token) >= 32 for token in links)
    assert re.search(r"admin: .*/admin  key: [\w-]{32}", result.output)
    assert "8 images, 2 gold" in result.output
    assert f"serve with `leaf rate serve {tmp_path / 'study'} --port 8001`" in result.output
    study = Study(tmp_path / "study")
    answers = {f"p{k}.jpg": 5 - k // 2 for k in range(8)} | {"good.jpg": 5, "bad.jpg": 1}
    for rater in study.raters():
        for step in range(rater.total):
            study.record(rater.id, step, answers[study.image(study.step(rater.id, step)
                                                             .image_id).name])
    status = invoke("rate", "status", tmp_path / "study")
    assert status.exit_code == 0 and "rater1: 11/11  ok" in status.output
    out = folder / "labels.csv"
    exported = invoke("ratings", "export", tmp_path / "study", "--out", out)
    assert exported.exit_code == 0, exported.output
    assert "rater1: 11 votes, gold 100% of 2" in exported.output and "→ kept" in exported.output
    lines = out.read_text().splitlines()
    assert lines[0] == "name,mos,std,n,round" and len(lines) == 9  # the study is the round
    assert "p0.jpg,5.0000,0.0000,2,study" in lines  # names as listed: labels by the photos
    assert "note:" not in exported.output
    revoked = invoke("rate", "revoke", tmp_path / "study", "rater2")
    assert revoked.exit_code == 0 and study.rater_for_token(links[1]) is None
    more = invoke("rate", "add-raters", tmp_path / "study", "--count", "1")
    assert "rater3: http://127.0.0.1:8001/r/" in more.output


def test_a_list_naming_missing_images_is_one_line_and_makes_no_study(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", count=2)
    (folder / "selected.csv").write_text("name\np0.jpg\nlost1.jpg\np1.jpg\nlost2.jpg\n")
    result = invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv")
    assert_user_error(result, "selected.csv", "2 image(s) not found", "lost1.jpg, lost2.jpg")
    assert not (tmp_path / "study").exists()
    (folder / "gold.csv").write_text("name,value\np0.jpg,9\n")
    result = invoke("rate", "create", tmp_path / "study", "--images", folder, "--gold",
                    folder / "gold.csv")
    assert_user_error(result, "gold", "p0.jpg=9")
    assert not (tmp_path / "study").exists()


def test_bad_study_and_method_are_one_line(tmp_path: Path) -> None:
    assert_user_error(invoke("ratings", "export", tmp_path, "--out", tmp_path / "x.csv"),
                      "not a study folder")
    folder = photos(tmp_path / "photos", count=3)
    invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv")
    assert_user_error(invoke("ratings", "export", tmp_path / "study", "--out",
                             tmp_path / "x.csv", "--method", "median"), "--method", "median")
    assert_user_error(invoke("ratings", "export", tmp_path / "study", "--out",
                             tmp_path / "x.csv"), "no ratings from a kept rater yet")
    assert not (tmp_path / "x.csv").exists()
    assert_user_error(invoke("rate", "revoke", tmp_path / "study", "rater9"), "no rater")


def test_calibrate_takes_the_exported_labels_as_they_are(tmp_path: Path,
                                                        model_file: Path) -> None:
    pytest.importorskip("sureal")
    folder = photos(tmp_path / "photos", count=10)
    invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
           "--raters", "2", "--repeats", "0")
    study = Study(tmp_path / "study")
    for rater in study.raters():
        for step in range(rater.total):
            name = study.image(study.step(rater.id, step).image_id).name
            study.record(rater.id, step, float(5 - int(name[1:].split(".")[0]) // 2))
    labels = tmp_path / "elsewhere" / "labels.csv"  # not beside the photos: relative paths
    exported = invoke("ratings", "export", tmp_path / "study", "--out", labels)
    assert exported.exit_code == 0 and "note: 10 names are written as paths" in exported.output
    assert "../photos/p0.jpg" in labels.read_text()
    out = tmp_path / "calibrated.safetensors"
    result = invoke("calibrate", model_file, "--labels", labels, "--budget", "10",
                    "--cache", tmp_path / "cache", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    # the labelled images within their pool (the photo folder, gold images and all): the
    # estimate speaks for the pool; a label outside it is one line naming it
    pooled = tmp_path / "pooled.safetensors"
    result = invoke("calibrate", model_file, "--labels", labels, "--pool", folder, "--budget",
                    "10", "--cache", tmp_path / "cache", "--out", pooled)
    assert result.exit_code == 0, result.output
    assert "expected on new images (from 10 labels" in result.output
    make_image(tmp_path / "elsewhere" / "stray.jpg", seed=9)
    with labels.open("a") as handle:
        handle.write("stray.jpg,3.0,0.0,2\n")
    assert_user_error(invoke("calibrate", model_file, "--labels", labels, "--pool", folder,
                             "--cache", tmp_path / "cache", "--out", tmp_path / "x.safetensors"),
                      "1 labelled image(s) are not in the pool", "stray.jpg")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_run_config_reads_the_exported_labels_as_they_are(tmp_path: Path) -> None:
    """`leaf run`'s data loader (``workspace.load_manifest``) on an exported label file."""
    pytest.importorskip("sureal")
    from leafiqa.config import load_config
    from leafiqa.workspace import load_manifest

    folder = photos(tmp_path / "photos", count=6)
    invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
           "--raters", "2", "--repeats", "0")
    study = Study(tmp_path / "study")
    for rater in study.raters():
        for step in range(rater.total):
            study.record(rater.id, step, float(1 + (step + rater.id) % 5))
    assert invoke("ratings", "export", tmp_path / "study", "--out",
                  folder / "labels.csv").exit_code == 0
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  kind: csv\n  path: {folder / 'labels.csv'}\n"
                      f"output: {tmp_path / 'run'}\n")
    manifest = load_manifest(load_config(config))
    assert len(manifest) == 6 and all(item.mos is not None for item in manifest)
    assert {item.name for item in manifest} == {f"p{k}.jpg" for k in range(6)}
