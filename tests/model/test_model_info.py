"""One builder for a model file's metadata (``modelfile.model_info``)."""

from __future__ import annotations

import numpy as np

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.calibration.prior import PriorCalibration
from leafiqa.model.file import ModelInfo, model_info
from leafiqa.student.head import QualityHead


def test_a_distilled_model_has_no_calibration_and_no_scale() -> None:
    head = QualityHead(12, hidden=4, components=3)
    info = model_info(backbone="efficientnet-lite0", input_sizes=[224, 512], head=head,
                      teacher_ids=["t"], manifest_hash="abc", notes={"stage": "distilled"})
    assert info.input_sizes == (224, 512) and info.head == head.config()
    assert info.score_map.kind == info.output_map.kind == "none"
    assert info.mos_range is None and info.score_range is None
    restored = ModelInfo.from_metadata(info.to_metadata(), "memory")
    assert (restored.teacher_ids, restored.notes) == (["t"], {"stage": "distilled"})


def test_a_calibrated_model_carries_its_maps_and_the_labels_range() -> None:
    line = ScoreMap("linear", [2.0, 1.0], 5)
    outer = ScoreMap("linear", [1.0, 0.5], 5)
    info = model_info(backbone="efficientnet-lite0", input_sizes=384,
                      head=QualityHead(12, hidden=4, components=3),
                      calibration=PriorCalibration(line, output_map=outer),
                      labelled_mos=np.array([1.5, 4.0, 2.5]))
    assert info.input_sizes == (384,)
    assert (info.score_map, info.output_map) == (line, outer)
    assert info.mos_range == (1.5, 4.0) == info.score_range


def test_the_network_applies_the_calibration_it_is_built_with() -> None:
    import torch

    from leafiqa.model.file import LeafNetwork
    from leafiqa.student.backbone import MultiLevelBackbone

    backbone = MultiLevelBackbone("efficientnet-lite0", pretrained=False)
    head = QualityHead(backbone.feature_dim, hidden=4, components=3)
    images = torch.rand(2, 3, 64, 64)
    distilled = LeafNetwork.calibrated(backbone, head)
    calibrated = LeafNetwork.calibrated(backbone, head, PriorCalibration(
        ScoreMap("linear", [2.0, 1.0], 5), output_map=ScoreMap("linear", [1.0, 0.5], 5)))
    assert not distilled.training and not calibrated.training
    with torch.no_grad():
        raw = distilled(images)
        assert torch.allclose(calibrated(images), 2.0 * raw + 1.5, atol=1e-5)
