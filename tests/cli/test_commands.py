from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from leafiqa.cli import app
from tests.judgments.test_store import CountingTeacher  # noqa: F401  (keeps import graph honest)

runner = CliRunner()


def test_score_folder_skips_unreadable_files(model_file: Path, image_folder: Path,
                                             tmp_path: Path) -> None:
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", str(model_file), str(image_folder), "--out", str(out),
                                 "--runtime", "torch", "--workers", "0", "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    assert "scored 12 images" in result.output and "skipped 1 unreadable" in result.output
    rows = [r for r in csv.DictReader(out.open()) if not r["error"]]
    assert len(rows) == 12 and all(float(r["score"]) > 0 for r in rows)


def test_score_accepts_csv_list_and_glob(model_file: Path, plain_manifest_csv: Path,
                                         image_folder: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{image_folder / 'image_00.jpg'}\n{image_folder / 'image_01.jpg'}\n")
    out = tmp_path / "s.parquet"
    result = runner.invoke(app, ["score", str(model_file), str(plain_manifest_csv), str(listing),
                                 str(image_folder / "image_1*.jpg"), "--out", str(out),
                                 "--runtime", "torch", "--workers", "0"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    assert len(pd.read_parquet(out)) == 12 + 2 + 2


def test_bad_input_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("name,mos\nmissing.jpg,3\n")
    result = runner.invoke(app, ["teach", "--data", str(bad), "--teacher", "cues",
                                 "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and "missing.jpg" in result.output
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.output
