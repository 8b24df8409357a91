"""A CSV as people have it — MOS for only some images, no split column, images elsewhere —
through leaf data --holdout, teach, distill, calibrate and evaluate on real AGIQA-3K images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.data.readers import read_plain_csv
from leafiqa.model.file import read_info
from tests.conftest import AGIQA, QBENCH, needs_agiqa

pytestmark = [needs_agiqa, pytest.mark.e2e]
runner = CliRunner()


def test_unlabeled_pool_and_holdout_through_the_cli_stages(tmp_path: Path) -> None:
    frame = pd.read_csv(AGIQA / "data.csv").iloc[::20].reset_index(drop=True)
    mos = frame["mos_quality"].where(frame.index % 2 == 0)  # half the images have no MOS
    ratings = tmp_path / "ratings.csv"
    pd.DataFrame({"name": frame["name"], "mos": mos}).to_csv(ratings, index=False)
    prepared = tmp_path / "prepared.csv"
    result = runner.invoke(app, ["data", "--data", str(ratings), "--image-root",
                                 str(AGIQA / "images"), "--holdout", "0.2", "--seed", "1",
                                 "--out", str(prepared)])
    assert result.exit_code == 0, result.output
    manifest = read_plain_csv(prepared)
    train = [i for i in manifest if i.split == "train"]
    n_labelled_train = sum(i.mos is not None for i in train)
    assert len(manifest) == 150 and n_labelled_train == 75 - 15
    store = tmp_path / "j.sqlite"
    teacher = f"qbench:{QBENCH / 'internlm_xcomposer_vl.json'}"
    result = runner.invoke(app, ["teach", "--data", str(prepared), "--teacher", teacher,
                                 "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    student = tmp_path / "student.safetensors"
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["distill", "--data", str(prepared), "--store", str(store),
                                 "--out", str(student), "--input-size", "224", "--cache",
                                 str(cache)])
    assert result.exit_code == 0, result.output
    fit = read_info(student).notes["distill"]  # and printed (issue 31)
    assert f"distilled a ridge head on {len(train)} images from" in result.output
    assert f"SRCC {fit['in_sample']:.3f} in-sample, {fit['out_of_sample']:.3f} leave-one-out" \
        in result.output and 0 < fit["out_of_sample"] < fit["in_sample"]
    result = runner.invoke(app, ["calibrate", str(student), "--labels", str(prepared),
                                 "--budget", "1.0", "--store", str(store), "--cache",
                                 str(cache)])
    assert result.exit_code == 0, result.output
    calibrated = tmp_path / "student-calibrated.safetensors"
    info = read_info(calibrated)
    kept = ("the line alone" if info.notes["correction_form"] == "line"
            else f"penalty α {info.notes['correction_alpha']:.3g}")
    assert f"calibrated on {n_labelled_train} labels of {prepared}, selection random: kept " \
        in result.output and kept in result.output
    assert info.notes["labels"] == n_labelled_train  # drawn only from images with a MOS
    assert info.provenance["labels_file"] == str(prepared)
    assert info.provenance["seeds"]["labels"] == 0
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(calibrated), "--data", str(prepared), "--json",
                                 str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 15 and metrics["srcc"] > 0.2 and np.isfinite(metrics["rmse"])
    # the model file records the images it trained on: none of the test images, every
    # labelled training image (issue 20, item 5)
    assert metrics["seen_in_training"] == 0
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("name,mos\n" + "".join(f"{i.path},{i.mos}\n" for i in manifest
                                               if i.mos is not None))
    result = runner.invoke(app, ["evaluate", str(calibrated), "--data", str(labelled)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seen_in_training"] == n_labelled_train
    assert f"{n_labelled_train} of the 75 images evaluated trained this model" in result.stderr
