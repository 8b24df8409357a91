"""The student, scikit-learn style: ``Student(...).fit(manifest, targets).predict(manifest)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.data.images import as_sizes
from leafiqa.data.manifest import Manifest
from leafiqa.student.distill import DistillConfig, TeacherTargets, distill_head
from leafiqa.student.features import DEFAULT_INPUT_SIZE, FeatureExtractor
from leafiqa.student.head import QualityHead


class Student:
    """A frozen EfficientNet-Lite with multi-level features and a small head.

    ``fit`` distils a teacher's judgments into the head; calibration (``leafiqa.calibrate``)
    then fine-tunes it on a few MOS labels and sets ``score_map``."""

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
        cache_dir: str | Path | None = None,
        distill: DistillConfig | None = None,
        runtime: str = "auto",
    ) -> None:
        self.backbone = backbone
        self.input_sizes = as_sizes(input_size)
        self.distill_config = distill or DistillConfig()
        self.extractor = FeatureExtractor(backbone, input_size, cache_dir, runtime=runtime)
        self.head: QualityHead | None = None
        self.score_map = ScoreMap()
        self.teacher_ids: list[str] = []
        self.manifest_hash = ""

    def features(self, manifest: Manifest, keys: Sequence[str] | None = None,
                 progress: bool = True) -> np.ndarray:
        from leafiqa.data.images import content_hash

        keys = list(keys) if keys is not None else [content_hash(i.path) for i in manifest]
        return self.extractor.transform(manifest, keys, progress=progress)

    def fit_features(self, features: np.ndarray, targets: TeacherTargets) -> Student:
        self.head = distill_head(features, targets, self.distill_config)
        self.teacher_ids = list(targets.teacher_ids)
        self.score_map = ScoreMap()
        return self

    def fit(self, manifest: Manifest, targets: TeacherTargets,
            keys: Sequence[str] | None = None) -> Student:
        """Distil ``targets`` (rows aligned with ``manifest``) into the head."""
        self.manifest_hash = manifest.fingerprint()
        return self.fit_features(self.features(manifest, keys), targets)

    def raw_scores(self, features: np.ndarray) -> np.ndarray:
        if self.head is None:
            raise RuntimeError("the student is not fitted yet")
        return self.head.predict(features)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        return self.score_map(self.raw_scores(features))

    def predict(self, manifest: Manifest, keys: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated scores (raw head scores while no calibration has been fitted)."""
        return self.predict_features(self.features(manifest, keys))
