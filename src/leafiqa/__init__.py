"""LEAF — label-efficient image quality assessment.

A multimodal LLM (the teacher) judges unlabeled images point-wise and pair-wise with a
reliability for each judgment; a small CNN (the student) learns those judgments by joint
distillation; a few human MOS labels calibrate it; the result is one small model file.

    import leafiqa
    metric = leafiqa.create_metric("runs/demo/leaf-model.safetensors")
    score = metric("photo.jpg")            # calibrated quality on the MOS scale
"""

from __future__ import annotations

from pathlib import Path

from leafiqa.api import calibrate_model as calibrate
from leafiqa.api import distill_from_store
from leafiqa.calibration.mapping import ScoreMap, fit_score_map
from leafiqa.config import RunConfig, load_config
from leafiqa.data import Manifest, read_dataset
from leafiqa.deploy.scorer import Scorer, load_model
from leafiqa.evaluation.metrics import evaluate
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.pipeline import run_pipeline
from leafiqa.student.student import Student
from leafiqa.teachers.protocol import PairJudgment, PointJudgment, Teacher
from leafiqa.teachers.registry import make_teacher

__version__ = "0.1.0"


def create_metric(model: str | Path, runtime: str = "auto") -> Scorer:
    """pyiqa-style: ``create_metric(path)(image) -> float``. ``model`` is a LEAF model file."""
    return load_model(model, runtime=runtime)


__all__ = [
    "JudgmentStore",
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
    "load_config",
    "load_model",
    "make_teacher",
    "read_dataset",
    "run_pipeline",
    "teach",
]
