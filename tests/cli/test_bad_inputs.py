"""Exit codes and one-line errors (issue 13, items 5, 7 and 8): every user error is one
``error:`` line with exit code 2, "nothing succeeded" exits 1, ``--strict`` stops at the
first bad input, no traceback reaches the user."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from leafiqa.cli import app
from tests.hostile import bomb_png

runner = CliRunner()


def invoke(*args: str):  # noqa: ANN201
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def assert_user_error(result, *fragments: str) -> None:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)


def test_yaml_syntax_error_and_wrong_type(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  kind: [agiqa3k\nlabels: {budget: 1}\n")
    assert_user_error(invoke("run", broken), "broken.yaml", "not valid YAML")
    typed = tmp_path / "typed.yaml"
    typed.write_text("labels:\n  budget: ten\n")
    assert_user_error(invoke("run", typed), "typed.yaml", "labels.budget", "'ten'")
    assert_user_error(invoke("bench", typed), "labels.budget")


def test_config_command_checks_and_prints_schema(tmp_path: Path) -> None:
    result = invoke("config", "--schema")
    schema = json.loads(result.output)
    assert "labels" in json.dumps(schema) and result.exit_code == 0
    good = tmp_path / "good.yaml"
    good.write_text("labels:\n  budget: 20\n")
    assert json.loads(invoke("config", good).output)["labels"]["budget"] == 20


def test_corrupt_store_and_a_typo_in_its_path(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    assert_user_error(invoke("judgments", "list", "--store", corrupt), "corrupt.sqlite")
    typo = tmp_path / "typo" / "x.sqlite"
    assert_user_error(invoke("judgments", "list", "--store", typo), "x.sqlite")
    assert not typo.exists() and not typo.parent.exists()
    assert_user_error(invoke("judgments", "export", "--out", tmp_path / "out.jsonl", "--store",
                             typo))


def test_model_file_with_wrong_tensor_shapes(model_file: Path, image_folder: Path,
                                             tmp_path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as handle:
        metadata = handle.metadata()
    head = json.loads(metadata["head"])
    head["hidden"] = head["hidden"] * 2
    wrong = tmp_path / "wrong.safetensors"
    save_file(load_file(str(model_file)), str(wrong), metadata={**metadata,
                                                                 "head": json.dumps(head)})
    assert_user_error(invoke("score", wrong, image_folder, "--out", tmp_path / "s.csv"),
                      "wrong.safetensors", "do not match")
    assert_user_error(invoke("serve", wrong, "--port", "1"), "wrong.safetensors")
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_text("hello")
    assert_user_error(invoke("serve", not_a_model, "--port", "1"), "notes.safetensors")


def test_evaluate_without_mos_is_an_error(model_file: Path, image_folder: Path) -> None:
    assert_user_error(invoke("evaluate", model_file, "--data", image_folder, "--runtime",
                             "torch"), "without MOS")


def test_duplicate_rows_are_not_unreadable(model_file: Path, image_folder: Path,
                                           tmp_path: Path) -> None:
    manifest = tmp_path / "dup.csv"
    rows = [f"{image_folder / f'image_{i:02d}.jpg'},{5 - i * 0.3}" for i in range(6)]
    manifest.write_text("name,mos\n" + "\n".join(rows + rows[:2]) + "\n")
    result = invoke("evaluate", model_file, "--data", manifest, "--runtime", "torch")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unreadable"] == 0


def test_score_counts_failures_by_reason_and_exits_1_when_none_scored(
        model_file: Path, image_folder: Path, tmp_path: Path) -> None:
    bomb_png(image_folder / "bomb.png")
    (image_folder / "text.jpg").write_bytes(b"not an image")
    result = invoke("score", model_file, image_folder, "--out", tmp_path / "s.csv",
                    "--runtime", "torch", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "scored 12 images" in result.output and "1 too many pixels" in result.output
    assert "1 not an image" in result.output
    bad = tmp_path / "bad"
    bomb_png(bad / "bomb.png")
    result = invoke("score", model_file, bad, "--out", tmp_path / "t.csv", "--runtime", "torch",
                    "--workers", "0")
    assert result.exit_code == 1
    assert "error: none of the inputs could be scored: 1 of 1 image failed" in result.output
    result = invoke("score", model_file, image_folder, "--strict", "--out", tmp_path / "u.csv",
                    "--runtime", "torch", "--workers", "0")
    assert_user_error(result, "--strict", "bomb.png")


def test_teach_exits_1_when_every_image_fails_and_strict_stops(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    bomb_png(folder / "a.png")
    bomb_png(folder / "b.png", side=25_000)
    result = invoke("teach", "--data", folder, "--teacher", "cues", "--store",
                    tmp_path / "s.sqlite", "--quiet")
    assert result.exit_code == 1, result.output
    assert "0 new" in result.output and "2 failed" in result.output
    assert_user_error(invoke("teach", "--data", folder, "--teacher", "cues", "--store",
                             tmp_path / "s.sqlite", "--quiet", "--strict"), "too many pixels")


def test_unreadable_subfolder_is_counted_not_skipped(model_file: Path, image_folder: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    locked = image_folder / "locked"
    locked.mkdir()
    (locked / "x.jpg").write_bytes((image_folder / "image_00.jpg").read_bytes())
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if Path(str(path)) == locked:  # what a folder without read permission does
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = invoke("score", model_file, image_folder, "--out", tmp_path / "s.csv",
                    "--runtime", "torch", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable (1 permission denied)" in result.output
    assert "locked" in result.output


def test_store_of_sqlite_with_another_schema_is_an_error(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE point_judgments (x TEXT)")
    result = invoke("judgments", "list", "--store", other)
    assert result.exit_code == 2 and "other.sqlite" in result.output
