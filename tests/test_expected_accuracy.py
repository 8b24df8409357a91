"""``leaf run`` and ``leaf calibrate`` print the accuracy expected from the labels alone, and
results.json and the model file store it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.model.file import read_info
from tests.conftest import REPO, write_recorded_dataset

runner = CliRunner()


def test_run_and_calibrate_report_the_expected_accuracy(tmp_path: Path) -> None:
    csv, recorded = write_recorded_dataset(
        tmp_path, 48, mos=lambda i: round(5 - i / 12, 2),
        logit_good=lambda i: round(3 - i / 8 + 1.5 * ((i * 7) % 5 - 2) / 2, 3),
        split=lambda i: "test" if i % 4 == 0 else "train")
    overrides = {"data.kind": "csv", "data.path": str(csv), "student.input_size": 64,
                 "teacher.spec": f"qbench:{recorded}", "teacher.fallback": "null",
                 "teacher.pairs_per_image": 2, "output": str(tmp_path / "run"),
                 "cache": str(tmp_path / "cache"), "labels.budget": 20,
                 "labels.selection": "variance"}
    args = ["run", str(REPO / "configs" / "demo.yaml"), "--quiet"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "LEAF expected on new images (from 20 labels, weighted for the selection)" in (
        result.output)
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    expected = summary["expected_accuracy"]
    assert expected["n_labels"] == 20 and expected["weighted"]
    assert expected["srcc_low"] <= expected["srcc"] <= expected["srcc_high"]
    assert expected["plcc_low"] <= expected["plcc"] <= expected["plcc_high"]
    info = read_info(tmp_path / "run" / "leaf-model.safetensors")
    assert info.notes["expected_accuracy"] == expected

    store = tmp_path / "j.sqlite"
    result = runner.invoke(app, ["teach", "--data", str(csv), "--teacher",
                                 f"qbench:{recorded}", "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["calibrate", str(tmp_path / "run" / "leaf-model.safetensors"),
                                 "--labels", str(csv), "--budget", "16", "--selection",
                                 "spread", "--store", str(store), "--cache",
                                 str(tmp_path / "cache"), "--out", str(tmp_path / "c.safetensors")])
    assert result.exit_code == 0, result.output
    assert "LEAF expected on new images (from 16 labels)" in result.output
    assert read_info(tmp_path / "c.safetensors").notes["expected_accuracy"]["n_labels"] == 16

    # over the folder the labels came from, the estimate speaks for its unlabelled images, and
    # the learning curve says what as many labels again would add
    result = runner.invoke(app, ["calibrate", str(tmp_path / "run" / "leaf-model.safetensors"),
                                 "--labels", str(csv), "--pool", str(csv), "--budget", "36",
                                 "--cache", str(tmp_path / "cache"),
                                 "--out", str(tmp_path / "p.safetensors")])
    assert result.exit_code == 0, result.output
    assert "LEAF expected on the pool's unlabelled images (from 36 labels)" in result.output
    assert "worth more labels? the next 36 labels: SRCC " in result.output
    curve = read_info(tmp_path / "p.safetensors").notes["learning_curve"]
    assert curve["sizes"] == [18, 27, 36] and curve["next_labels"] == 36
    assert curve["gain_low"] <= curve["expected_gain"] <= curve["gain_high"]
    assert curve["next_width"] < curve["width"]
