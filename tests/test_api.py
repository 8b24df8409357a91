"""The functions the command line is a thin layer over (``leafiqa.api``), called from Python:
they take and return plain values and raise LEAF's errors, with no Typer in between."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leafiqa import api
from leafiqa.data.inputs import read_data
from leafiqa.errors import ConfigError, NothingSucceeded


def test_score_images_writes_every_row_and_counts_the_failures(model_file: Path,
                                                               image_folder: Path,
                                                               tmp_path: Path) -> None:
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "scores.csv"
    run = api.score_images(model_file, [image_folder], out)
    assert isinstance(run, api.ScoreRun)
    assert (run.scored, len(run.failures), run.inputs, run.resumed) == (12, 1, 13, 0)
    assert run.reason_counts() == "1 not an image"
    assert "scored 12 images" in run.summary() and "skipped 1 unreadable" in run.summary()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 13 and sum(row["score"] == "" for row in rows) == 1
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        api.score_images(model_file, [image_folder], engine="spark")


def test_evaluate_model_gives_the_metrics_and_says_what_it_does_not_know(
        model_file: Path, plain_manifest_csv: Path, tmp_path: Path) -> None:
    result = api.evaluate_model(model_file, read_data(plain_manifest_csv), subset="",
                                progress=False)
    assert result.images == 12 and -1 <= result.metrics["srcc"] <= 1
    assert result.seen is None and result.metrics["seen_in_training"] == "unknown"
    test_only = api.evaluate_model(model_file, read_data(plain_manifest_csv), progress=False)
    assert test_only.images == 3  # the rows whose split is test
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (broken / name).write_bytes(f"not an image: {name}".encode())
    (broken / "data.csv").write_text("name,mos\na.jpg,1\nb.jpg,2\nc.jpg,3\n")
    with pytest.raises(NothingSucceeded, match="none of the 3 images") as caught:
        api.evaluate_model(model_file, read_data(broken / "data.csv"), progress=False)
    assert caught.value.exit_code == 1  # the command exits 1: the inputs failed, not its use


def test_select_images_picks_training_images_only(plain_manifest_csv: Path) -> None:
    manifest = read_data(plain_manifest_csv)
    chosen = api.select_images(manifest, 4, selection="random", store=None)
    training = {item.name for item in manifest if item.split == "train"}
    assert len(chosen.names) == 4 and set(chosen.names) <= training
    assert chosen.pool == len(training) and chosen.already_rated == 0


def test_teach_then_distill_from_python(image_folder: Path, tmp_path: Path) -> None:
    store = tmp_path / "judgments.sqlite"
    taught = api.teach_images(read_data(image_folder), "cues", store, pairs_per_image=0,
                              progress=False)
    assert taught.report.succeeded == 12 and taught.endpoints == []
    model = api.distill_from_store(read_data(image_folder), store, tmp_path / "s.safetensors",
                                   input_size=64, cache_dir=tmp_path / "cache")
    assert model.is_file()
    assert api.model_card(model)["path"] == str(model)
    assert api.export_model(model, tmp_path / "s.onnx") == tmp_path / "s.onnx"


def test_create_study_returns_its_links_and_key_once(image_folder: Path,
                                                     tmp_path: Path) -> None:
    made = api.create_study(tmp_path / "study", image_folder, raters=3, repeats=1)
    assert len(made.links) == 3 and made.admin_key and made.dropped_gold == []
    assert made.study.admin_key_matches(made.admin_key)
    assert len(made.study.images()) == 12
