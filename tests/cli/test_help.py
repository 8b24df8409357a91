"""`leaf --help` and every subcommand's help read like a person wrote them: no type tags, one
sentence per command in a list, every option described; `leaf config --set`, `leaf models
--json`, and a user's model listed with the card its run recorded."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.cli.base import first_sentence

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
TYPE_TAG = re.compile(r"<(bool|str|int|float|path|list\[[a-z]+\]|[a-z]+ range)>")


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], Any]]:  # Typer's commands (its private copy of click's classes)
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


ALL = list(commands(typer.main.get_command(app)))


def help_text(path: tuple[str, ...], width: int = 100) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"", "run", "score", "export", "models", "config", "judgments",
            "judgments import"} <= names


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=lambda p: " ".join(p) or "leaf")
def test_help_shows_no_type_tags(path: tuple[str, ...]) -> None:
    text = help_text(path)
    assert not TYPE_TAG.search(text), TYPE_TAG.search(text)
    assert "--no-no-" not in text
    assert "``" not in text  # no raw RST literals


@pytest.mark.parametrize("path", [path for path, c in ALL if getattr(c, "commands", None)],
                         ids=lambda p: " ".join(p) or "leaf")
def test_command_lists_show_one_whole_sentence_each(path: tuple[str, ...]) -> None:
    group = dict(ALL)[path]
    text = help_text(path, width=400)
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\s*│\s(\S+)\s{2,}(.*?)\s*│$", line)
        if match and match.group(1) in group.commands:  # type: ignore[attr-defined]
            rows[match.group(1)] = match.group(2)
    assert set(rows) == set(group.commands)  # type: ignore[attr-defined]
    for name, summary in rows.items():
        assert summary[-1] in ".?!", f"{name}: {summary!r} is cut"
        full = " ".join((group.commands[name].help or "").split())  # type: ignore[attr-defined]
        assert full.startswith(summary), (name, summary)


def test_first_sentence_ignores_abbreviations_and_line_breaks() -> None:
    text = "Score images, e.g. photos, in\n    batches. Images that fail keep a row.\n\nMore."
    assert first_sentence(text) == "Score images, e.g. photos, in batches."


def test_every_parameter_is_described() -> None:
    missing = []
    for path, command in ALL:
        context = typer.Context(command)
        for param in command.get_params(context):
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"leaf {' '.join(path)} {param.name}")
    assert not missing, missing


def test_flags_take_no_value_and_have_no_negative_twin() -> None:
    text = help_text(("distill",))
    assert re.search(r"--no-reliability\s+weight every judgment equally", text)
    assert "--no-quiet" not in help_text(("run",))


def test_config_accepts_set_like_run_and_bench() -> None:
    result = runner.invoke(app, ["config", str(CONFIG), "--set", "student.input_size=384",
                                 "--set", "labels.budget=7"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["student"]["input_size"] == 384
    assert config["labels"]["budget"] == 7
    bad = runner.invoke(app, ["config", str(CONFIG), "--set", "student.nope=1"])
    assert bad.exit_code == 2
    assert "error:" in bad.output and "nope" in bad.output


def test_models_json_lists_the_packaged_models_with_their_cards() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = {model["name"]: model for model in json.loads(result.output)}
    for name in ("leaf-agiqa3k", "leaf-clive"):
        assert listed[name]["packaged"] is True
        assert Path(listed[name]["path"]).is_file()
        assert listed[name]["card"]["title"] == listed[name]["title"]
        assert 0 < listed[name]["test"]["srcc"] <= 1


def test_a_users_model_lists_under_its_file_name_with_its_runs_card(
        model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "my-run"
    run_dir.mkdir()
    mine = shutil.copy(model_file, run_dir / "sharpness-v2.safetensors")
    (run_dir / "results.json").write_text(json.dumps({
        "model": str(mine), "dataset": "/data/my-photos", "teacher": "qbench:test",
        "n_labels": 30, "label_selection": "random", "student": "efficientnet-lite0 at 96 px",
        "metrics": {"LEAF": {"srcc": 0.612, "plcc": 0.65}, "labels only": {"srcc": 0.4}}}))
    (tmp_path / "other").mkdir()
    shutil.copy(model_file, tmp_path / "other" / "unrecorded.safetensors")
    monkeypatch.setenv("LEAF_MODEL_PATH", f"{run_dir}:{tmp_path / 'other'}")

    listed = {m["name"]: m for m in json.loads(runner.invoke(app, ["models", "--json"]).output)}
    assert listed["sharpness-v2"]["packaged"] is False
    assert listed["sharpness-v2"]["title"] == "own model: my-photos"
    assert listed["sharpness-v2"]["test"] == {"srcc": 0.612, "plcc": 0.65}
    assert listed["sharpness-v2"]["card"]["labels"] == "30 MOS labels (random)"
    assert listed["unrecorded"]["card"] == {}
    table = runner.invoke(app, ["models"], env={"COLUMNS": "200"}).output
    assert re.search(r"sharpness-v2\s+own model: my-photos .* 0\.612", table)
