"""One spelling per idea across every command (issue 34): the choices an option offers are
the library's own, the data set is `--data`, `--out` a file, `--json` a flag, defaults written
once, and no command module grows past what a reader takes in at once."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import typer

from leafiqa.cli import app, options
from leafiqa.defaults import DATASET_KINDS, ENGINES
from tests.conftest import REPO

CLI = REPO / "src" / "leafiqa" / "cli"


def values(choice: type[Enum]) -> list[str]:
    return [member.value for member in choice]


def test_every_choice_is_the_librarys_own() -> None:
    from leafiqa.data.readers import READERS
    from leafiqa.labelling.designs import STRATEGIES
    from leafiqa.labelling.screening import METHODS
    from leafiqa.labelling.study import SCALES
    from leafiqa.model.graphs import PRECISIONS
    from leafiqa.model.quantize import FORMATS

    assert values(options.Kind) == ["auto", *DATASET_KINDS]
    assert sorted(DATASET_KINDS) == sorted(READERS)
    assert values(options.Engine) == list(ENGINES)
    assert values(options.Selection) == list(STRATEGIES)
    assert values(options.Precision) == list(PRECISIONS)
    assert values(options.QuantFormat) == list(FORMATS)
    assert values(options.RatingScale) == list(SCALES)
    assert values(options.Screening) == list(METHODS)
    assert f"{options.Kind.auto}" == "auto"  # a choice prints as its value


def parameters() -> list[tuple[str, object]]:
    found = []
    for name, command in commands(typer.main.get_command(app)):
        context = typer.Context(command)  # type: ignore[arg-type]
        found += [(name, param) for param in command.get_params(context)]  # type: ignore[attr-defined]
    return found


def commands(command: object, path: str = "leaf") -> list[tuple[str, object]]:
    subcommands = getattr(command, "commands", {})
    if not subcommands:
        return [(path, command)]
    return [pair for name, sub in sorted(subcommands.items())
            for pair in commands(sub, f"{path} {name}")]


def test_one_spelling_per_idea() -> None:
    seen = parameters()
    shown = [(name, p) for name, p in seen if not getattr(p, "hidden", False)]
    for name, param in shown:
        opts = getattr(param, "opts", [])
        if "--json" in opts:  # JSON on stdout: a flag
            assert getattr(param, "is_flag", False), name
        assert "--strategy" not in opts, name  # the label design is --selection
        if getattr(param, "name", "") == "data":  # the data set is --data, never an argument
            assert opts == ["--data"], name
    arguments = [(name, param) for name, param in shown
                 if type(param).__name__.endswith("Argument")]
    assert [name for name, param in arguments
            if getattr(param, "name", "") in ("data", "out")] == []


def test_defaults_that_repeat_are_written_once() -> None:
    sources = {path: path.read_text(encoding="utf-8")
               for path in (REPO / "src" / "leafiqa").rglob("*.py")}
    for literal in ('"runs/judgments.sqlite"', '"split_1"'):
        where = [str(path.relative_to(REPO)) for path, text in sources.items() if literal in text]
        assert where == ["src/leafiqa/defaults.py"], (literal, where)


def test_no_command_module_is_longer_than_a_reader_takes_in() -> None:
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines())
               for path in CLI.glob("*.py")}
    assert max(lengths.values()) <= 250, lengths


def test_every_command_module_is_registered() -> None:
    registered = set(re.findall(r"^from leafiqa\.cli import \(([^)]*)\)",
                                (CLI / "__init__.py").read_text(), re.M)[0].split())
    modules = {path.stem + "," for path in CLI.glob("*.py")} - {
        "__init__,", "base,", "options,"}
    assert {name.rstrip(",") for name in registered} == {m.rstrip(",") for m in modules}


def test_a_hidden_argument_stays_out_of_the_usage_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    usage = CliRunner().invoke(app, ["data", "--help"]).output
    assert "old_path" not in usage and "[OPTIONS]" in usage
