"""Imports go one way along the pipeline: a stage may import an earlier stage, never a later
one — at module level or inside a function (a function-level import is still a dependency;
it only hides the cycle from the interpreter)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "leafiqa"

# rank of each first-level module or package under leafiqa; imports may only go to an equal or
# lower rank. Not listed: the top layer (deploy, distributed, cli, api, pipeline, bench, methods,
# workspace, metric, registry, …), which may import anything.
FOUNDATION = 0  # errors, version, redact, defaults: no leafiqa imports of their own
RANKS: dict[str, int] = {
    "errors": FOUNDATION,
    "defaults": FOUNDATION,
    "version": FOUNDATION,
    "redact": FOUNDATION,
    "data": 1,
    "config": 1,  # settings for every stage; validates input sizes with data.images
    "ratings": 1,  # human ratings → MOS labels: reads image lists with data, feeds calibration
    "teachers": 2,
    "judgments": 3,
    "student": 4,
    "calibration": 5,
    "evaluation": 6,
}
TOP = 7


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (
        PACKAGE / relative / "__init__.py").is_file()


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


def rank(module: str) -> int:
    parts = module.split(".")
    return RANKS.get(parts[1], TOP) if len(parts) > 1 else TOP


def test_the_rank_table_names_existing_modules() -> None:
    for name in RANKS:
        assert is_module(f"leafiqa.{name}"), name


def test_no_stage_imports_a_later_stage() -> None:
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported, line in imported_modules(path):
            if rank(imported) > rank(importer):
                backwards.append(f"{path.relative_to(REPO)}:{line}: {importer} → {imported}")
    assert not backwards, "imports against the pipeline's direction:\n" + "\n".join(backwards)
