from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.deploy.modelfile import LeafNetwork, ModelInfo, save_model
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.head import QualityHead


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real LEAF model: Lite0 backbone, a head on random features, a logistic map."""
    rng = np.random.default_rng(0)
    backbone = MultiLevelBackbone("efficientnet-lite0")
    head = QualityHead(backbone.feature_dim, hidden=32, dropout=0.0, components=16)
    head.set_normalisation(rng.normal(size=(64, backbone.feature_dim)).astype(np.float32))
    score_map = ScoreMap("logistic4", [4.5, 0.5, 0.0, 1.5], 100)
    info = ModelInfo(backbone="efficientnet-lite0", input_size=96, head=head.config(),
                     score_map=score_map, teacher_ids=["qbench:test"], manifest_hash="abc",
                     mos_range=(0.5, 4.5))
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    return save_model(path, LeafNetwork(backbone, head, score_map).eval(), info)
