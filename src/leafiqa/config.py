"""Run configuration: one YAML file drives ``leaf run`` and ``leaf bench``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leafiqa.calibration.finetune import CalibrationConfig
from leafiqa.data.images import as_sizes
from leafiqa.student.distill import DistillConfig
from leafiqa.student.features import DEFAULT_INPUT_SIZE


@dataclass
class DataConfig:
    kind: str = "agiqa3k"
    path: str = "../shared/data/agiqa3k"
    split: str | None = "split_1"
    limit: int | None = None  # N images spread over the dataset (quick runs)
    image_root: str | None = None  # csv: where image names resolve (default: the CSV's folder)
    holdout: float | None = None  # no split column: this fraction of the MOS rows tests
    holdout_seed: int = 0


@dataclass
class TeacherConfig:
    spec: str = "cues"
    fallback: str | None = None  # used for images the main teacher has no judgment for
    ensemble: list[str] = field(default_factory=list)  # several specs → a teacher ensemble
    pairs_per_image: int = 4
    max_requests: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudentConfig:
    backbone: str = "efficientnet-lite0"
    # one size, or a list of sizes: an image pyramid whose features are concatenated
    input_size: int | list[int] = field(default_factory=lambda: list(DEFAULT_INPUT_SIZE))
    unfreeze_blocks: int = 0  # > 0: partial fine-tuning of the last blocks (slow on a CPU)
    tail_epochs: int = 4
    tail_lr: float = 1e-4

    def __post_init__(self) -> None:
        try:
            as_sizes(self.input_size)
        except (TypeError, ValueError) as error:
            raise ValueError(f"student.input_size: {error}") from None


@dataclass
class LabelConfig:
    budget: float = 0.1  # < 1: fraction of the training split; ≥ 1: a count
    selection: str = "random"
    seed: int = 0


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    output: str = "runs/demo"
    judgments: str | None = None  # default: <output>/judgments.sqlite
    cache: str | None = None  # default: <output>/../cache
    bench: dict[str, Any] = field(default_factory=dict)

    @property
    def judgments_path(self) -> Path:
        return Path(self.judgments) if self.judgments else Path(self.output) / "judgments.sqlite"

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.output).parent / "cache"


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = names[key].default_factory() if callable(names[key].default_factory) else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config; relative paths in it are relative to the file's folder's parent
    project (the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        target = values
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return _build(RunConfig, values, str(path))


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def run_provenance(config: RunConfig) -> dict[str, Any]:
    """What a run's model file and results.json record about where they came from: tool
    version, git commit, the labels file (data path, kind, split) and every seed."""
    from leafiqa.version import provenance

    return provenance(
        labels_file={"kind": config.data.kind, "path": config.data.path,
                     "split": config.data.split},
        seeds={"labels": config.labels.seed, "distill": config.distill.seed,
               "calibration": config.calibration.seed},
    )
