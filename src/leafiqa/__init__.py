"""LEAF — label-efficient image quality assessment.

A multimodal LLM (the teacher) judges unlabeled images point-wise and pair-wise with a
reliability for each judgment; a small CNN (the student) learns those judgments by joint
distillation; a few human MOS labels calibrate it; the result is one small model file.

    import leafiqa
    leafiqa.list_models()                          # ['leaf-agiqa3k', 'leaf-clive', …]
    metric = leafiqa.create_metric("leaf-agiqa3k") # or a model file of your own
    score = metric("photo.jpg")                    # (1,) tensor on the model's MOS scale
"""

from __future__ import annotations

import importlib
from typing import Any

from leafiqa.errors import (
    BackboneError,
    ConfigError,
    DataError,
    LeafError,
    ModelFileError,
    TeacherError,
)
from leafiqa.version import __version__

# Imported on first use, so `import leafiqa` (and reading a config) does not load torch.
_LAZY = {
    "calibrate": ("leafiqa.api", "calibrate_model"),
    "distill_from_store": ("leafiqa.api", "distill_from_store"),
    "ScoreMap": ("leafiqa.calibration.mapping", "ScoreMap"),
    "fit_score_map": ("leafiqa.calibration.mapping", "fit_score_map"),
    "RunConfig": ("leafiqa.config", "RunConfig"),
    "load_config": ("leafiqa.config", "load_config"),
    "Manifest": ("leafiqa.data", "Manifest"),
    "read_dataset": ("leafiqa.data", "read_dataset"),
    "Scorer": ("leafiqa.model.scorer", "Scorer"),
    "load_model": ("leafiqa.model.scorer", "load_model"),
    "evaluate": ("leafiqa.evaluation.metrics", "evaluate"),
    "teach": ("leafiqa.judgments.runner", "teach"),
    "JudgmentStore": ("leafiqa.judgments.store", "JudgmentStore"),
    "run_pipeline": ("leafiqa.experiments.pipeline", "run_pipeline"),
    "PairJudgment": ("leafiqa.teachers.protocol", "PairJudgment"),
    "PointJudgment": ("leafiqa.teachers.protocol", "PointJudgment"),
    "Teacher": ("leafiqa.teachers.protocol", "Teacher"),
    "make_teacher": ("leafiqa.teachers.specs", "make_teacher"),
    "create_metric": ("leafiqa.model.metric", "create_metric"),
    "LeafMetric": ("leafiqa.model.metric", "LeafMetric"),
    "list_models": ("leafiqa.model.registry", "list_models"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leafiqa' has no attribute {name!r}")


# The public API: the workflow (score, teach, distil, calibrate, evaluate, run, bench a config)
# and the errors to catch. Records and stages stay importable from their modules (and, for
# older callers, lazily from here) but are not part of it.
__all__ = [
    "BackboneError",
    "ConfigError",
    "DataError",
    "JudgmentStore",
    "LeafError",
    "LeafMetric",
    "ModelFileError",
    "RunConfig",
    "Scorer",
    "TeacherError",
    "__version__",
    "calibrate",
    "create_metric",
    "distill_from_store",
    "evaluate",
    "list_models",
    "load_config",
    "load_model",
    "make_teacher",
    "read_dataset",
    "run_pipeline",
    "teach",
]
