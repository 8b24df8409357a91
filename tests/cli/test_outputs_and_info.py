"""``leaf score`` outputs people can script, ``leaf info``/``models``/``--version``, and the
provenance every model file records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.model.file import load_network, read_info, save_model
from leafiqa.version import __version__

runner = CliRunner()
SCORE = ["--runtime", "torch", "--workers", "0", "--batch-size", "4"]


@pytest.fixture()
def mixed_folder(image_folder: Path) -> Path:
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    return image_folder


def test_failures_keep_their_row_with_an_error(model_file: Path, mixed_folder: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", str(model_file), str(mixed_folder), "--out", str(out),
                                 *SCORE])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "score", "error"] and len(rows) == 13
    broken = [r for r in rows if r["path"].endswith("broken.jpg")]
    assert broken[0]["score"] == "" and "broken.jpg" in broken[0]["error"]
    assert all(float(r["score"]) > 0 and r["error"] == "" for r in rows if r not in broken)


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_output_format_follows_the_extension(model_file: Path, mixed_folder: Path,
                                             tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scores{suffix}"
    result = runner.invoke(app, ["score", str(model_file), str(mixed_folder), "--out", str(out),
                                 *SCORE])
    assert result.exit_code == 0, result.output
    frame = pd.read_json(out) if suffix == ".json" else pd.read_parquet(out)
    assert list(frame.columns) == ["path", "score", "error"] and len(frame) == 13
    assert frame["score"].isna().sum() == 1 and frame["error"].notna().sum() == 1
    if suffix == ".json":
        records = json.loads(out.read_text())
        assert [r["path"] for r in records] == sorted(r["path"] for r in records)  # input order
        broken = [r for r in records if r["path"].endswith("broken.jpg")][0]
        assert broken["score"] is None and "broken.jpg" in broken["error"]


def test_unknown_output_format_is_refused_before_scoring(model_file: Path, image_folder: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "scores.xlsx"
    result = runner.invoke(app, ["score", str(model_file), str(image_folder), "--out", str(out),
                                 *SCORE])
    assert result.exit_code == 2 and ".xlsx" in result.output and not out.exists()


def test_exit_status_when_images_fail(model_file: Path, mixed_folder: Path,
                                      tmp_path: Path) -> None:
    broken_only = [str(mixed_folder / "broken.jpg"), str(tmp_path / "missing.png")]
    out = tmp_path / "s.csv"
    result = runner.invoke(app, ["score", str(model_file), *broken_only, "--out", str(out),
                                 *SCORE])
    assert result.exit_code == 1 and "2 of 2 images failed" in result.output
    assert len(list(csv.DictReader(out.open()))) == 2  # still written
    result = runner.invoke(app, ["score", str(model_file), str(mixed_folder), "--strict",
                                 "--out", str(tmp_path / "strict.csv"), *SCORE])
    # --strict stops at the first unreadable image: a user error (exit 2) naming it
    assert result.exit_code == 2 and "--strict" in result.output


def test_model_files_record_version_commit_labels_and_seeds(model_file: Path,
                                                            tmp_path: Path) -> None:
    network, info = load_network(model_file)
    assert info.provenance["tool_version"] == __version__
    assert "git_commit" in info.provenance
    info.provenance = {"labels_file": {"path": "ratings.csv"}, "seeds": {"labels": 3}}
    copy = save_model(tmp_path / "copy.safetensors", network, info, half_backbone=True)
    again = read_info(copy)
    assert again.provenance["seeds"] == {"labels": 3}
    assert again.provenance["tool_version"] == __version__
    assert copy.stat().st_size < 0.6 * model_file.stat().st_size  # float16 backbone
    result = runner.invoke(app, ["info", str(copy)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["provenance"]["labels_file"] == {"path": "ratings.csv"}
    assert shown["score_range"] == [0.5, 4.5] and shown["lower_better"] is False


def test_run_provenance_names_the_labels_file_and_seeds() -> None:
    from leafiqa.config import RunConfig, run_provenance

    record = run_provenance(RunConfig())
    assert record["labels_file"]["path"] == "../shared/data/agiqa3k"
    assert set(record["seeds"]) == {"labels", "distill", "calibration"}
    assert record["tool_version"] == __version__


def test_version_models_and_info_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    result = runner.invoke(app, ["info", "no-such-model"])
    assert result.exit_code == 2 and "no-such-model" in result.output
