"""Run configuration: one YAML file drives ``leaf run`` and ``leaf bench``.

Each section is a typed pydantic dataclass: a wrong type (``labels.budget: ten``) or an unknown
key is one ``ConfigError`` naming the file and the field, and ``leaf config --schema`` prints
the JSON schema with every key's description. Sections stay plain dataclasses for their users
(attribute access, ``dataclasses.replace``, ``dataclasses.asdict``). Adding a key is one line in
its section. Nothing here imports a stage (reading a YAML does not load torch)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from leafiqa.defaults import (
    CACHE_ENV,
    DATASET_KINDS,
    DEFAULT_BACKBONE,
    DEFAULT_INPUT_SIZE,
    DEFAULT_SPLIT,
    default_cache,
)
from leafiqa.errors import ConfigError, quoted

EFFICIENTNET_BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")

# inf and nan are refused for every float (``labels.budget: 1e400`` reads as inf)
_STRICT = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)
# every number of a config must fit the 32-bit integers and float32 values the stages use
MAX_NUMBER = 2**31 - 1
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(config=_STRICT)
class DataConfig:
    kind: str = Field("agiqa3k", description="dataset reader: " + ", ".join(DATASET_KINDS))
    path: str = Field("../shared/data/agiqa3k", description="dataset folder or manifest CSV")
    split: str | None = Field(DEFAULT_SPLIT, description="split column of the splits file "
                                                        "(train/test per image)")
    splits: str | None = Field(None, description="splits CSV (name, split_1, …); default: "
                                                 "splits.csv beside the data, or the data CSV's "
                                                 "own columns")
    image_root: str | None = Field(None, description="folder the CSV's image names are "
                                                     "relative to (csv kind)")
    limit: int | None = Field(None, ge=1, description="N images spread over the dataset "
                                                       "(quick runs)")
    holdout: float | None = Field(None, gt=0, lt=1, description="no split column: this "
                                  "fraction of the rows with MOS becomes the test set (seeded)")
    holdout_seed: int = 0


@dataclass(config=_STRICT)
class TeacherConfig:
    spec: str = Field("cues", description="teacher spec (cues, qbench:FILE, jsonl:FILE, openai, "
                                          "transformers:MODEL)")
    fallback: str | None = Field(None, description="teacher for images the main one has no "
                                                   "judgment for")
    ensemble: list[str] = Field(default_factory=list,
                                description="several specs → a teacher ensemble")
    pairs_per_image: int = Field(4, ge=0, description="pair-wise judgments per image")
    max_requests: int | None = Field(None, ge=0, description="stop after this many judgments")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="teacher options (url, model, api_key_env, …)")


@dataclass(config=_STRICT)
class StudentConfig:
    backbone: str = Field(DEFAULT_BACKBONE, description="feature backbone: efficientnet-lite0/1/2 "
                          "(offline), or a Hugging Face vision model by hub id or folder: "
                          "hf:facebook/dinov2-small, hf:facebook/convnext-base-224@REVISION, "
                          "hf:/models/convnext-base (the transformers extra)")
    input_size: int | list[int] = Field(
        default_factory=lambda: list(DEFAULT_INPUT_SIZE),
        description="one size, or a list of sizes: an image pyramid whose features are "
                    "concatenated")
    finetune: Literal["none", "tail", "full"] = Field(
        "none", description="train the backbone on the teacher's judgments too: none (frozen "
                            "features), tail (the last unfreeze_blocks blocks) or full (every "
                            "layer); on CUDA when present, slow on a CPU")
    unfreeze_blocks: int = Field(0, ge=0, description="blocks tuned by finetune: tail (0 → 1); "
                                                      "> 0 alone means tail")
    tail_epochs: int = Field(4, ge=0)
    tail_lr: float = Field(1e-4, gt=0)
    balance_levels: bool = Field(
        True, description="give each block of features (a level's means or standard deviations "
                          "at one input size) an equal share of the ridge prior, instead of a "
                          "share in proportion to its channels")

    def __post_init__(self) -> None:
        if self.finetune == "none" and self.unfreeze_blocks > 0:
            self.finetune = "tail"
        if self.finetune == "tail" and self.unfreeze_blocks <= 0:
            self.unfreeze_blocks = 1

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, value: str) -> str:
        # names only: whether an hf: model is reachable is checked when it is loaded
        if value in EFFICIENTNET_BACKBONES or (value.startswith("hf:") and value[3:].strip()):
            return value
        raise ValueError(f"unknown backbone {value!r}: choose {', '.join(EFFICIENTNET_BACKBONES)}"
                         ", or hf:HUB_ID / hf:FOLDER for a Hugging Face vision model")

    @field_validator("input_size", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        from leafiqa.data.images import as_sizes  # PIL and NumPy only

        try:
            as_sizes(value)
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        return value


@dataclass(config=_STRICT)
class DistillConfig:
    """The ``distill`` section: joint distillation's weights and training (used as is by
    ``leafiqa.student.distill``)."""

    # ridge: the teacher's point-wise judgments distilled in closed form (reliability-weighted
    # ridge, penalty by leave-one-out); mlp: a small MLP trained on the joint point + pair loss
    head: Literal["ridge", "mlp"] = "ridge"
    point_weight: float = 1.0
    pair_weight: float = 1.0
    temperature: float = 0.5
    pair_loss: str = "bce"
    # the teacher's score as log-odds, as is ([0, 1]), or the two standardised and added
    target: Literal["logit", "score", "blend"] = "logit"
    use_reliability: bool = True
    reliability_floor: float = 0.2
    hidden: int = 64
    dropout: float = 0.2
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-3
    val_fraction: float = 0.1
    eval_every: int = 10
    patience: int = 6
    seed: int = 0


@dataclass(config=_STRICT)
class CalibrationConfig:
    """The ``calibration`` section: the forms LEAF's calibration chooses among, and the
    labels-only student's training (used as is by ``leafiqa.experiments.labels_only``)."""

    forms: list[Literal["two-stage", "joint"]] = Field(
        default_factory=lambda: ["two-stage", "joint"],
        description="forms of the labels' correction that leave-one-out chooses among: "
                    "two-stage (the line onto MOS, then a ridge on its residuals) and joint "
                    "(the student's weight refitted together with the ridge)")
    min_gain_se: float = Field(
        default=1.0, ge=0, description="below 30 labels the correction is kept only when its "
                               "leave-one-out gain over the line exceeds this many standard "
                               "errors (0: any gain)")
    min_pool_agreement: float = Field(
        default=0.9, ge=0, le=1, description="below 30 labels the correction is kept only "
                                             "when the Spearman correlation between the "
                                             "student's ranking of a sample of the pool and "
                                             "the corrected one is at least this (0: off)")
    steps: int = 120
    lr: float = 5e-4
    weight_decay: float = 1e-3
    rank_weight: float = 1.0
    rank_temperature: float = 0.3
    max_rank_pairs: int = 20000
    seed: int = 0


@dataclass(config=_STRICT)
class LabelConfig:
    budget: float = Field(0.1, ge=0, description="< 1: fraction of the training split; ≥ 1: "
                                                 "a count; 0: none (ranks only)")
    selection: str = Field("variance", description="label selection: random, spread, kcenter or "
                           "variance (labelling.designs)")
    seed: int = 0


@dataclass(config=_STRICT)
class RunConfig:
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    output: str = Field("runs/demo", description="run folder")
    judgments: str | None = Field(None, description="judgment store (default: "
                                                    "<output>/judgments.sqlite)")
    cache: str | None = Field(None, description=f"feature cache (default: ${CACHE_ENV}, else "
                                                 "the user's cache folder, whatever the output "
                                                 "folder)")
    bench: dict[str, Any] = Field(default_factory=dict, description="`leaf bench` grid")

    @property
    def judgments_path(self) -> Path:
        return Path(self.judgments) if self.judgments else Path(self.output) / "judgments.sqlite"

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else default_cache()


_ADAPTER = TypeAdapter(RunConfig)

# keys that configs of earlier versions may hold, and why they are gone
_REMOVED_TEACHER_TERM = ("removed: the teacher's term in the labels-only student's loss was "
                         "never used (LEAF calibrates without fine-tuning its head); delete it")
REMOVED_KEYS = {
    "calibration.teacher_weight": _REMOVED_TEACHER_TERM,
    "calibration.teacher_half_life": _REMOVED_TEACHER_TERM,
}


def _field_name(parts: tuple) -> str:
    """A dotted field name; a key that is not a plain word is repr-quoted (``data.'\\n'``)."""
    return ".".join(str(part) if isinstance(part, int) or _PLAIN_KEY.match(str(part))
                    else repr(str(part)) for part in parts) or "(top level)"


def _describe(error: ValidationError, where: str) -> str:
    """The first validation error as one line: file, dotted field, what was wrong, the value."""
    problems = []
    for item in error.errors():
        field = _field_name(tuple(item["loc"]))
        kind = item["type"]
        value = item.get("input")
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            problems.append(f"{field}: {REMOVED_KEYS.get(field, 'unknown key')}")
            continue
        message = item["msg"].removeprefix("Value error, ")
        plain = kind == "missing" or kind == "value_error" or isinstance(value, dict)
        shown = "" if plain else f" (got {value!r})"
        problems.append(f"{field}: {message}{shown}")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = quoted(where)
    return f"{where}: {problems[0]}{more}" if problems else f"{where}: invalid config"


def _out_of_range(value: object, path: tuple) -> tuple[tuple, object] | None:
    """The first number in ``value`` (a section, a list) that is not finite or whose size
    exceeds ``MAX_NUMBER``, with its place."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            found = _out_of_range(getattr(value, item.name), (*path, item.name))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _out_of_range(item, (*path, index))
            if found:
                return found
    elif (isinstance(value, int | float) and not isinstance(value, bool)
          and (not math.isfinite(value) or abs(value) > MAX_NUMBER)):
        return path, value
    return None


def build_config(values: dict[str, Any], where: str = "<config>") -> RunConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"{quoted(where)}: expected a mapping at the top level, got "
                          f"{type(values).__name__}")
    try:
        config = _ADAPTER.validate_python(values)
    except ValidationError as error:
        raise ConfigError(_describe(error, where)) from None
    found = _out_of_range(config, ())
    if found:
        place, value = found
        raise ConfigError(f"{quoted(where)}: {_field_name(place)}: must be a finite number "
                          f"of size at most {MAX_NUMBER} (got {value!r:.40})")
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config; relative paths in it are relative to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        target = values
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {dotted}: '{parent}' is not a section")
        target[leaf] = value
    return build_config(values, str(path))


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain values, for results files: credentials written in a URL (a
    teacher's ``options.url``) are redacted."""
    from leafiqa.redact import redact_values

    return redact_values(dataclasses.asdict(config))  # type: ignore[return-value]


def config_schema() -> dict[str, Any]:
    """The JSON schema of a run config (``leaf config --schema``)."""
    return _ADAPTER.json_schema()


def schema_text() -> str:
    return json.dumps(config_schema(), indent=2)


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
