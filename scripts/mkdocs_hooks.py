"""MkDocs hooks: the reference pages that are generated from the code at build time, so they
never drift from it.

A page holds a marker line; ``on_page_markdown`` replaces it:

- ``<!-- leaf:cli -->``: ``leaf --help`` and every command's ``--help``, as a user sees them;
- ``<!-- leaf:config -->``: every config key, from ``leaf config --schema`` (types,
  descriptions) and ``leaf config`` of an empty file (every default), plus ``bench``'s keys;
- ``<!-- leaf:api -->``: a mkdocstrings block for every name in ``leafiqa.__all__``, each at the
  module that defines it (whatever the package's layout).

On GitHub the committed page shows its introduction and says the rest is generated.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import inspect
import json
import tempfile
from pathlib import Path
from typing import Any

WIDTH = 78  # columns of the captured help: fits a docs code block without scrolling
CLI = "<!-- leaf:cli -->"
CONFIG = "<!-- leaf:config -->"
API = "<!-- leaf:api -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CLI in markdown:
        markdown = markdown.replace(CLI, cli_reference())
    if CONFIG in markdown:
        markdown = markdown.replace(CONFIG, config_reference())
    if API in markdown:
        markdown = markdown.replace(API, api_reference())
    return markdown


# --- CLI -------------------------------------------------------------------------------------

def _invoke(args: list[str]) -> str:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    result = CliRunner().invoke(app, args, prog_name="leaf", terminal_width=WIDTH,
                                env={"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"})
    if result.exit_code != 0:
        raise RuntimeError(f"leaf {' '.join(args)} exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def command_paths() -> list[list[str]]:
    """Every command and group of ``leaf``, depth first, in the order ``leaf --help`` lists
    them."""
    import typer.main

    from leafiqa.cli import app

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


def cli_reference() -> str:
    parts = []
    for path in command_paths():
        title = " ".join(["leaf", *path])
        parts.append(f"## `{title}`\n\n```text\n$ {title} --help\n"
                     f"{_invoke([*path, '--help'])}\n```\n")
    return "\n".join(parts)


# --- config ----------------------------------------------------------------------------------

def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, and ``<…>`` shown as text outside code spans
    (``default: <output>/judgments.sqlite`` is not an HTML tag)."""
    parts = " ".join(str(text).split()).split("`")
    parts[::2] = [html.escape(part, quote=False) for part in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def _type(spec: dict) -> str:
    if "anyOf" in spec:
        return " or ".join(_type(option) for option in spec["anyOf"])
    if "enum" in spec:
        return " \\| ".join(f"`{value}`" for value in spec["enum"])
    if spec.get("type") == "array":
        return f"list of {_type(spec.get('items', {}))}"
    bounds = [f"{sign} {spec[key]}" for key, sign in
              (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
               ("exclusiveMaximum", "<")) if key in spec]
    name = {"null": "null", "object": "mapping"}.get(spec.get("type", ""), spec.get("type", "any"))
    return name + (f" ({', '.join(bounds)})" if bounds else "")


def _default(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | type | default | what it is |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} | {_cell(text)} |"
              for key, kind, default, text in rows]
    return "\n".join(lines)


def config_reference() -> str:
    schema = json.loads(_invoke(["config", "--schema"]))
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty.yaml"
        empty.write_text("{}\n")
        defaults = json.loads(_invoke(["config", str(empty)]))
    sections, top = [], []
    for name, spec in schema["properties"].items():
        if "$ref" in spec:
            definition = schema["$defs"][spec["$ref"].split("/")[-1]]
            rows = [(f"{name}.{key}", _type(field), _default(defaults[name][key]),
                     field.get("description", ""))
                    for key, field in definition["properties"].items()]
            intro = _cell(definition.get("description", ""))
            sections.append(f"## `{name}`\n\n{intro}\n\n{_table(rows)}\n")
        elif name != "bench":
            top.append((name, _type(spec), _default(defaults[name]), spec.get("description", "")))
    sections.insert(0, f"## Top level\n\n{_table(top)}\n")
    sections.append(bench_reference())
    return "\n".join(sections)


def _bench_grid() -> type:
    """``leaf bench``'s grid, wherever the package keeps it."""
    for module in ("leafiqa.experiments.bench", "leafiqa.bench"):
        try:
            return importlib.import_module(module).BenchGrid  # type: ignore[no-any-return]
        except ModuleNotFoundError:
            continue
    raise RuntimeError("no BenchGrid in leafiqa.experiments.bench or leafiqa.bench")


def _field_comments(cls: type) -> dict[str, str]:
    """The comment lines right above each field of a dataclass (its description)."""
    lines = inspect.getsource(cls).splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse("\n".join(lines)).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#"):
                above.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            comments[node.target.id] = " ".join(above)
    return comments


# What a bench key means where BenchGrid's source has no comment above it (a comment there wins)
BENCH_KEYS = {
    "splits": "the data set's splits to run (columns of its splits file)",
    "seeds": "label draws per split (seeds)",
    "budgets": "label budgets: a fraction of the training MOS (≤ 1; 1.0 = all), or a count (> 1)",
    "methods": "LEAF, its ablations and the baselines to run, by name",
    "selections": "label selection designs LEAF and the baselines run under; `NAME/rounds` for "
                  "labels arriving in rounds",
    "ablation_selections": "the designs LEAF's ablations run under",
    "limit": "N images spread over the data set (quick runs)",
}


def bench_reference() -> str:
    grid = _bench_grid()
    comments = {**BENCH_KEYS, **{k: v for k, v in _field_comments(grid).items() if v}}
    rows = []
    for field in dataclasses.fields(grid):
        if field.default is not dataclasses.MISSING:
            value: Any = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            value = None
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        rows.append((f"bench.{field.name}", f"`{kind}`", _default(value),
                     comments.get(field.name, "")))
    return ("## `bench`\n\n`leaf bench`'s grid (`leaf bench CONFIG --set bench.KEY=VALUE`); "
            "an unknown key is an error naming the allowed ones. `--quick` keeps the first "
            "split and seed, the budgets 0, 10 % and 100 %, and random selection.\n\n"
            f"{_table(rows)}\n")


# --- Python API ------------------------------------------------------------------------------

def api_reference() -> str:
    import leafiqa

    blocks = []
    for name in sorted(leafiqa.__all__, key=str.lower):
        if name.startswith("__"):
            continue
        obj = getattr(leafiqa, name)
        if not hasattr(obj, "__qualname__"):  # a constant: no docstring of its own
            blocks.append(f"## `leafiqa.{name}`\n\n`{obj!r}`\n")
            continue
        where = f"{obj.__module__}.{obj.__qualname__}"
        blocks.append(f"## `leafiqa.{name}`\n\n::: {where}\n    options:\n"
                      "      show_root_toc_entry: false\n")
    return "\n".join(blocks)
