"""``leaf rate`` and ``leaf ratings export`` from the command line: a study from a `leaf select`
style list, one-line errors that change nothing, and a label file `leaf calibrate` takes as is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leafiqa.labelling.study import Study
from tests.cli.test_bad_inputs import assert_user_error, invoke
from tests.conftest import make_image
from tests.labelling.conftest import made_read_only, rated_study


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
    assert lines[0] == "name,mos,std,n,se,round" and len(lines) == 9  # the study is the round
    assert "p0.jpg,5.0000,0.0000,2,0.0000,study" in lines  # names as listed: labels by the photos
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
    assert "expected on the pool's unlabelled images (from 10 labels" in result.output
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
    from leafiqa.experiments.workspace import load_manifest

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


# --- one line for every failure on a study's files; counts checked (issue 32) --------------

def made_study(tmp_path: Path, *options: str) -> Path:
    folder = photos(tmp_path / "photos", count=3)
    result = invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
                    *options)
    assert result.exit_code == 0, result.output
    return tmp_path / "study"


def test_a_damaged_or_foreign_study_file_is_one_line_for_every_command(tmp_path: Path) -> None:
    import sqlite3

    study = made_study(tmp_path)
    commands = [("rate", "status", study), ("rate", "serve", study, "--port", "9"),
                ("ratings", "export", study, "--out", tmp_path / "labels.csv"),
                ("rate", "add-raters", study, "--count", "1"), ("rate", "revoke", study, "1")]
    (study / "study.sqlite").write_bytes(b"\x00garbage" * 512)
    for command in commands:
        assert_user_error(invoke(*command), "study.sqlite", "not a readable LEAF study",
                          "backup")
    (study / "study.sqlite").unlink()
    with sqlite3.connect(study / "study.sqlite") as other:
        other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    other.close()
    for command in commands:
        assert_user_error(invoke(*command), "study.sqlite", "another program", "invoices")
    assert not (tmp_path / "labels.csv").exists()


def test_a_read_only_study_is_read_but_not_served(tmp_path: Path) -> None:
    study = rated_study(tmp_path)
    with made_read_only(study.folder):
        status = invoke("rate", "status", study.folder)
        assert status.exit_code == 0 and "rater1: 1/5" in status.output
        assert_user_error(invoke("rate", "serve", study.folder, "--port", "9"),
                          "study.sqlite", "cannot write the study", "not damaged", "writable")
        assert_user_error(invoke("rate", "add-raters", study.folder), "cannot write the study")


def test_a_study_is_not_made_onto_a_file(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", count=2)
    (tmp_path / "notes.txt").write_text("keep me")
    assert_user_error(invoke("rate", "create", tmp_path / "notes.txt", "--images", folder),
                      "notes.txt", "is a file")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("options, says", [
    (("--raters", "-3"), "--raters: expected 1 to 1000 links, got -3"),
    (("--raters", "0"), "--raters: expected 1 to 1000 links, got 0"),
    (("--raters", "5000"), "--raters: expected 1 to 1000"),
    (("--repeats", "-1"), "--repeats: expected 0 or more")])
def test_counts_out_of_range_are_one_line_and_make_no_study(tmp_path: Path, options: tuple,
                                                            says: str) -> None:
    folder = photos(tmp_path / "photos", count=2)
    assert_user_error(invoke("rate", "create", tmp_path / "study", "--images", folder,
                             *options), says)
    assert not (tmp_path / "study").exists()


def test_add_raters_counts_and_repeats_are_reported_as_planned(tmp_path: Path) -> None:
    study = made_study(tmp_path, "--repeats", "1000", "--raters", "1")
    created = Study(study)
    assert created.settings.repeats == 3
    assert created.raters()[0].total == 6  # 3 images, each shown a second time
    for count in ("-2", "0"):
        assert_user_error(invoke("rate", "add-raters", study, "--count", count),
                          f"--count: expected 1 to 1000 raters, got {count}")
    assert len(Study(study).raters()) == 1
    folder = tmp_path / "photos"
    again = invoke("rate", "create", tmp_path / "study2", "--images", folder / "selected.csv",
                   "--repeats", "1000")
    assert "3 images, 0 gold, scale acr, 3 repeats per rater (--repeats 1000: 3 images can " \
           "each be shown once more)" in again.output


def test_one_photo_under_three_names_is_named_when_merged(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", count=3)
    for copy in ("copy1.jpg", "copy2.jpg"):
        (folder / copy).write_bytes((folder / "p0.jpg").read_bytes())
    result = invoke("rate", "create", tmp_path / "study", "--images", folder, "--repeats", "0")
    assert result.exit_code == 0, result.output
    assert "note: 3 files have the same content and are one image, 'copy1.jpg': 'copy2.jpg', " \
           "'p0.jpg' merged into it" in result.output
    assert "study " in result.output and ": 5 images," in result.output  # 7 files, 5 photos


def test_the_export_note_counts_the_rows_written(tmp_path: Path) -> None:
    pytest.importorskip("sureal")
    study = made_study(tmp_path, "--raters", "1", "--repeats", "0")
    opened = Study(study)
    for rater in opened.raters():
        for step in range(2):  # one of the 3 images stays unrated
            opened.record(rater.id, step, float(2 + step))
    rated = {opened.step(r.id, k).image_id for r in opened.raters() for k in range(2)}
    labels = tmp_path / "elsewhere" / "labels.csv"
    exported = invoke("ratings", "export", study, "--out", labels, "--method", "mean")
    assert exported.exit_code == 0, exported.output
    rows = len(labels.read_text().splitlines()) - 1
    assert rows == len(rated) < 3
    assert f"wrote {labels}: {rows} images" in exported.output
    assert f"note: {rows} names are written as paths relative to" in exported.output
