"""Models by name: the packaged ones (the separate distribution ``leaf-iqa-models``, installed
by ``pip install 'leaf-iqa[models]'``: its package ``leafiqa_models`` holds the
``*.safetensors``, under their own non-commercial terms) and any a user keeps in the folders
named by ``LEAF_MODEL_PATH`` (separated like ``PATH``). A model's name is its file name without
``.safetensors``; a packaged name cannot be shadowed."""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from leafiqa.errors import ConfigError
from leafiqa.model.modelinfo import ModelInfo, read_info
from leafiqa.redact import one_line

__all__ = ["ENV_VAR", "MODELS_EXTRA", "PACKAGED_NAMES", "SUFFIX", "RegisteredModel",
           "list_models", "model_dirs", "model_listing", "packaged_dir", "recorded_card",
           "registered_models", "resolve_model"]

ENV_VAR = "LEAF_MODEL_PATH"
SUFFIX = ".safetensors"
MODELS_PACKAGE = "leafiqa_models"  # the import name of the leaf-iqa-models distribution
MODELS_EXTRA = "pip install 'leaf-iqa[models]'"
# the names leaf-iqa-models ships, known without it: asking for one says what to install
PACKAGED_NAMES = ("leaf-agiqa3k", "leaf-agiqa3k-10pct", "leaf-clive")


def packaged_dir() -> Path | None:
    """The folder of the installed ``leafiqa_models`` package; None when it is not installed."""
    try:
        root = importlib.resources.files(MODELS_PACKAGE)
    except ModuleNotFoundError:
        return None
    return root if isinstance(root, Path) and root.is_dir() else None  # a real folder only


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    path: Path
    packaged: bool

    def info(self) -> ModelInfo:
        return read_info(self.path)


def recorded_card(path: Path) -> dict:
    """The card of a model ``leaf run`` wrote, from the ``results.json`` the run left beside it:
    data, teacher, labels, student and test metrics (empty when there is no such record)."""
    record = path.parent / "results.json"
    try:
        results = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(results, dict) or Path(str(results.get("model", ""))).name != path.name:
        return {}
    metrics = results.get("metrics") or {}
    card = {"title": f"own model: {Path(str(results.get('dataset', ''))).name}",
            "training_data": results.get("dataset"), "teacher": results.get("teacher"),
            "labels": f"{results.get('n_labels')} MOS labels ({results.get('label_selection')})",
            "student": results.get("student"), "recorded_in": str(record)}
    if metrics:
        card["test"] = next(iter(metrics.values()))  # the first method is LEAF's own
    return card


def model_dirs() -> list[Path]:
    """Where named models are looked for, in order: the packaged ones' (when leaf-iqa-models is
    installed), then ``LEAF_MODEL_PATH``."""
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    packaged = packaged_dir()
    return [packaged, *extra] if packaged else extra


def registered_models() -> dict[str, RegisteredModel]:
    found: dict[str, RegisteredModel] = {}
    packaged = packaged_dir()
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            name = path.name[: -len(SUFFIX)]
            found.setdefault(name, RegisteredModel(name, path, folder == packaged))
    return found


def _patterns(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value if v]


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def list_models(metric_mode: str | None = None,
                filter: str | Sequence[str] = "",  # noqa: A002 (pyiqa's name)
                exclude_filters: str | Sequence[str] = "") -> list[str]:
    """Names of the models ``create_metric`` accepts, like ``pyiqa.list_models``: LEAF models
    are no-reference (``metric_mode`` ``NR``; ``FR`` lists none); ``filter`` and
    ``exclude_filters`` are a wildcard or a list of them (a name matching any filter is kept,
    one matching any exclusion is dropped), sorted naturally as pyiqa sorts."""
    if metric_mode not in (None, "NR", "FR"):
        raise ConfigError(f"metric_mode: 'NR', 'FR' or None, got {metric_mode!r}")
    if metric_mode == "FR":
        return []
    names = set(registered_models())
    includes = _patterns(filter)
    if includes:
        names = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in includes)}
    for pattern in _patterns(exclude_filters):
        names = {n for n in names if not fnmatch.fnmatchcase(n, pattern)}
    return sorted(names, key=_natural_key)


def model_listing() -> list[dict]:
    """Every registered model as ``leaf models`` lists it: name, path, whether it is packaged,
    and its card's title, MOS scale and test metrics (a user's model: the card its run
    recorded, ``recorded_card``); a file that cannot be read is listed with its error."""
    listed: list[dict] = []
    for name, entry in registered_models().items():
        try:
            info = entry.info()
        except (FileNotFoundError, ValueError) as error:
            listed.append({"name": name, "path": str(entry.path), "packaged": entry.packaged,
                           "error": one_line(error)})
            continue
        card = info.card or ({} if entry.packaged else recorded_card(entry.path))
        listed.append({"name": name, "path": str(entry.path), "packaged": entry.packaged,
                       "title": card.get("title", "(own model)"), "scale": info.score_range,
                       "test": card.get("test", {}), "card": card})
    return listed


def resolve_model(model: str | Path) -> Path:
    """A model file path, or the name of a registered model → the model file."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    models = registered_models()
    if str(model) in models:
        return models[str(model)].path
    if path.suffix == SUFFIX or path.parent != Path("."):
        raise FileNotFoundError(f"{path}: model file not found")
    if str(model) in PACKAGED_NAMES:
        raise FileNotFoundError(f"'{model}' is a packaged model of leaf-iqa-models, which is not "
                                f"installed: {MODELS_EXTRA}")
    raise FileNotFoundError(
        f"'{model}': no model file or registered model of that name; registered: "
        f"{sorted(models) or 'none'} (add folders of your own with {ENV_VAR})")
