from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.deploy.modelfile import LeafNetwork, ModelInfo, save_model
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.head import QualityHead


def write_model_file(path: Path, sizes: Sequence[int]) -> Path:
    """A small real LEAF model: Lite0 backbone reading ``sizes``, a head on random features, a
    logistic map."""
    rng = np.random.default_rng(0)
    backbone = MultiLevelBackbone("efficientnet-lite0")
    dim = backbone.feature_dim * len(sizes)
    head = QualityHead(dim, hidden=32, dropout=0.0, components=16)
    head.set_normalisation(rng.normal(size=(64, dim)).astype(np.float32))
    score_map = ScoreMap("logistic4", [4.5, 0.5, 0.0, 1.5], 100)
    info = ModelInfo(backbone="efficientnet-lite0", input_sizes=tuple(sizes), head=head.config(),
                     score_map=score_map, teacher_ids=["qbench:test"], manifest_hash="abc",
                     mos_range=(0.5, 4.5))
    return save_model(path, LeafNetwork(backbone, head, score_map).eval(), info)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_file(tmp_path_factory.mktemp("model") / "model.safetensors", [96])


@pytest.fixture(scope="session")
def pyramid_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model reading an image pyramid of two sizes."""
    return write_model_file(tmp_path_factory.mktemp("pyramid") / "pyramid.safetensors", [64, 96])
