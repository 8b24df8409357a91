"""Options renamed for one convention across commands (issue 34) still work under their old
names, each with a one-line note: a data set given as an argument (`leaf data DATA`, `leaf
select DATA`), `leaf evaluate --json FILE` (now `--out`), `leaf judgments export FILE` (now
`--out`), `leaf teach --backend` (now `--teacher`). A data set or an output file given both
ways is an error."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from leafiqa.cli import app

runner = CliRunner()


def test_leaf_data_reads_its_old_argument_with_a_note(plain_manifest_csv: Path) -> None:
    old = runner.invoke(app, ["data", str(plain_manifest_csv)])
    new = runner.invoke(app, ["data", "--data", str(plain_manifest_csv)])
    assert old.exit_code == 0 and new.exit_code == 0, old.output + new.output
    assert "note: `leaf data DATA` is now `leaf data --data DATA`" in old.output
    assert "note:" not in new.output
    assert old.stdout == new.stdout
    both = runner.invoke(app, ["data", str(plain_manifest_csv), "--data",
                               str(plain_manifest_csv)])
    assert both.exit_code == 2 and "give the data set once" in both.output
    neither = runner.invoke(app, ["data"])
    assert neither.exit_code == 2 and neither.output.startswith("error: missing option '--data'")


def test_evaluate_json_file_is_now_out(model_file: Path, plain_manifest_csv: Path,
                                       tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    args = ["evaluate", str(model_file), "--data", str(plain_manifest_csv), "--subset", ""]
    first = runner.invoke(app, [*args, "--json", str(old)])
    second = runner.invoke(app, [*args, "--out", str(new)])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "note: `leaf evaluate --json FILE` is now `leaf evaluate --out FILE`" in first.output
    assert json.loads(old.read_text()) == json.loads(new.read_text())
    assert json.loads(new.read_text()) == json.loads(second.stdout)  # the same JSON on stdout
    both = runner.invoke(app, [*args, "--json", str(old), "--out", str(new)])
    assert both.exit_code == 2 and "once" in both.output


def test_judgments_export_file_is_now_out(tmp_path: Path) -> None:
    from leafiqa.judgments.store import JudgmentStore

    store = tmp_path / "j.sqlite"
    JudgmentStore(store).close()
    old = runner.invoke(app, ["judgments", "export", str(tmp_path / "old.jsonl"), "--store",
                              str(store)])
    new = runner.invoke(app, ["judgments", "export", "--out", str(tmp_path / "new.jsonl"),
                              "--store", str(store)])
    assert old.exit_code == 0 and new.exit_code == 0, old.output + new.output
    assert "note: `leaf judgments export FILE` is now `leaf judgments export --out FILE`" \
        in old.output
    assert (tmp_path / "old.jsonl").read_text() == (tmp_path / "new.jsonl").read_text()
    missing = runner.invoke(app, ["judgments", "export", "--store", str(store)])
    assert missing.exit_code == 2 and "--out" in missing.output


def test_teach_backend_is_now_teacher(image_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["teach", "--backend", "cues", "--data", str(image_folder),
                                 "--store", str(tmp_path / "j.sqlite"), "--pairs-per-image", "0",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert "note: --backend is now --teacher" in result.output
    assert "cues" in result.stdout and "12 images" in result.stdout
    assert "--backend" not in runner.invoke(app, ["teach", "--help"]).output
