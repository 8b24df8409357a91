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

from leafiqa.api import calibrate_model as calibrate
from leafiqa.api import distill_from_store
from leafiqa.calibration.mapping import ScoreMap, fit_score_map
from leafiqa.config import RunConfig, load_config
from leafiqa.data import Manifest, read_dataset
from leafiqa.deploy.scorer import Scorer, load_model
from leafiqa.evaluation.metrics import evaluate
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.metric import LeafMetric, create_metric
from leafiqa.pipeline import run_pipeline
from leafiqa.registry import list_models
from leafiqa.student.student import Student
from leafiqa.teachers.protocol import PairJudgment, PointJudgment, Teacher
from leafiqa.teachers.registry import make_teacher
from leafiqa.version import __version__

__all__ = [
    "JudgmentStore",
    "LeafMetric",
    "Manifest",
    "PairJudgment",
    "PointJudgment",
    "RunConfig",
    "ScoreMap",
    "Scorer",
    "Student",
    "Teacher",
    "calibrate",
    "create_metric",
    "distill_from_store",
    "evaluate",
    "fit_score_map",
    "list_models",
    "load_config",
    "load_model",
    "make_teacher",
    "read_dataset",
    "run_pipeline",
    "teach",
    "__version__",
]
