"""Imports go one way along the pipeline: a stage may import an earlier stage, never a later
one — at module level or inside a function (a function-level import is still a dependency;
it only hides the cycle from the interpreter). Every module of the package has a rank (a new
folder or module must be given one), and no modules or folders import each other in a circle,
within a rank either."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "leafiqa"

# The rank of each first-level module or folder of leafiqa (docs: Architecture). An import may
# only go to an equal or lower rank.
FOUNDATION = 0  # errors, version, redact, defaults: no leafiqa imports of their own
RANKS: dict[str, int] = {
    "errors": FOUNDATION,
    "defaults": FOUNDATION,
    "version": FOUNDATION,
    "redact": FOUNDATION,
    # the pipeline's stages
    "data": 1,
    "config": 1,  # settings for every stage; validates input sizes with data.images
    "teachers": 2,
    "judgments": 3,
    "student": 4,
    "calibration": 5,
    "evaluation": 6,
    # the features built on them
    "model": 7,  # the model file, its registry, scoring, exports
    "testing": 7,  # fixtures for tests and benchmarks (the mock teacher): imports nothing
    "serve": 8,  # the scoring service: scores with model
    "labelling": 9,  # designs, studies, ratings; its rating service shares serve's limits
    "distributed": 9,  # Ray engines of teach, features and score
    "experiments": 10,  # workspace, methods, leaf run, leaf bench: use labelling and model
    "api": 11,  # the functions the command line calls
    "cli": 12,
    "__main__": 12,  # `python -m leafiqa` is the command line
}
# `import leafiqa` (the lazy public names) ranks above everything: no module of the package
# imports it
ROOT = 13


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_module(name: str) -> bool:
    return name in MODULES


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(leafiqa module, line) for every import in ``path``, at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:  # `from leafiqa import config` imports leafiqa.config
                candidate = f"{base}.{alias.name}"
                found.append((candidate if is_module(candidate) else base, node.lineno))
    return sorted({(module, line) for module, line in found
                   if module == "leafiqa" or module.startswith("leafiqa.")})


def unit(module: str) -> str:
    """The first-level module or folder a module belongs to (``leafiqa`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "leafiqa"


def rank(module: str) -> int:
    return ROOT if unit(module) == "leafiqa" else RANKS[unit(module)]


def dependencies() -> dict[str, set[str]]:
    return {name: {imported for imported, _ in imported_modules(path) if imported != name}
            for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def first_level_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for importer, imported in graph.items():
        units.setdefault(unit(importer), set()).update(
            unit(name) for name in imported if unit(name) != unit(importer))
    return units


def test_every_module_has_a_rank_and_every_rank_names_a_module() -> None:
    first_level = {unit(name) for name in MODULES} - {"leafiqa"}
    assert sorted(first_level - set(RANKS)) == [], "give each new module or folder a rank"
    assert sorted(set(RANKS) - first_level) == []


def test_no_stage_imports_a_later_stage() -> None:
    backwards = []
    for name, path in MODULES.items():
        for imported, line in imported_modules(path):
            if rank(imported) > rank(name):
                backwards.append(f"{path.relative_to(REPO)}:{line}: {name} → {imported}")
    assert not backwards, "imports against the pipeline's direction:\n" + "\n".join(backwards)


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert cycles(dependencies()) == []


def test_no_folders_import_each_other_in_a_circle() -> None:
    assert cycles(first_level_graph(dependencies())) == []


def importers_of(prefix: str) -> Iterable[str]:
    for name, imported in dependencies().items():
        if any(module == prefix or module.startswith(prefix + ".") for module in imported):
            yield name


def test_only_the_command_line_imports_it_and_nothing_imports_the_test_fixtures() -> None:
    assert {unit(name) for name in importers_of("leafiqa.cli")} <= {"cli", "__main__"}
    assert [name for name in importers_of("leafiqa.testing")
            if unit(name) != "testing"] == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert first_level_graph({"leafiqa.x.a": {"leafiqa.y.b"}, "leafiqa.y.b": {"leafiqa.x.c"}}
                             ) == {"x": {"y"}, "y": {"x"}}
