from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from leafiqa.data.images import as_sizes, load_model_input
from leafiqa.judgments.pairs import derive_pairs, select_pairs
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.distill import DistillConfig, build_targets, distill_head
from leafiqa.student.tail_tuning import TailConfig, cache_front, tune_tail
from tests.conftest import make_image
from tests.student.test_student import teacher_points


def test_tuning_the_last_block_fits_the_teacher_better(tmp_path: Path) -> None:
    paths = [make_image(tmp_path / f"i{i:02d}.jpg", seed=i, blur=(i % 8) * 0.5, size=64)
             for i in range(40)]
    quality = -np.array([(i % 8) * 0.5 for i in range(40)])  # less blur = better
    keys = [p.name for p in paths]
    points = teacher_points(keys, quality)
    pairs = derive_pairs(points, select_pairs(keys, {k: p.score for k, p in points.items()}))
    targets = build_targets(keys, points, pairs)
    backbone = MultiLevelBackbone("efficientnet-lite0").eval()
    with torch.inference_mode():
        features = backbone(torch.from_numpy(np.stack([load_model_input(p, 64) for p in paths])))
    head = distill_head(features.numpy(), targets, DistillConfig(hidden=16, val_fraction=0))
    frozen_tail = [p.detach().clone() for p in backbone.net._blocks[-1].parameters()]
    early = [p.detach().clone() for p in backbone.net._blocks[0].parameters()]
    front = cache_front(backbone, paths, 64, backbone.block_count - 1, progress=False)
    tuned_backbone, tuned_head = tune_tail(
        backbone, head, front, targets, TailConfig(blocks=1, epochs=3, lr=1e-3,
                                                   batch_size=8),
        DistillConfig(hidden=16, val_fraction=0), progress=False)
    changed = any(not torch.equal(a, b) for a, b in
                  zip(frozen_tail, tuned_backbone.net._blocks[-1].parameters(), strict=True))
    assert changed  # the unfrozen block was trained
    for a, b in zip(early, tuned_backbone.net._blocks[0].parameters(), strict=True):
        assert torch.equal(a, b)  # the front stayed frozen
    with torch.inference_mode():
        pixels = torch.from_numpy(np.stack([load_model_input(p, 64) for p in paths]))
        tuned_scores = tuned_head(tuned_backbone(pixels)).numpy()
    assert spearmanr(tuned_scores, quality).statistic > 0.5


def run_tuned_pipeline(tmp_path: Path, size: int, student: dict, budget: int) -> dict:
    """``leaf run`` on 48 synthetic images (every 4th a test image) with the recorded teacher
    and ``student`` settings; returns its summary."""
    from leafiqa.config import load_config
    from leafiqa.experiments.pipeline import run_pipeline
    from tests.conftest import REPO, write_recorded_dataset

    csv, recorded = write_recorded_dataset(
        tmp_path / "images", 48, mos=lambda i: 4 - (i % 6) * 0.5,
        logit_good=lambda i: 2 - (i % 6) * 0.7,
        split=lambda i: "test" if i % 4 == 0 else "train", size=size,
        blur=lambda i: (i % 6) * 0.6)
    config = load_config(REPO / "configs" / "demo.yaml", {
        "data.kind": "csv", "data.path": str(csv), "data.split": None,
        "teacher.spec": f"qbench:{recorded}", "teacher.fallback": None,
        **{f"student.{key}": value for key, value in student.items()},
        "labels.budget": budget, "output": str(tmp_path / "run"),
        "cache": str(tmp_path / "cache"), "distill.hidden": 16})
    return run_pipeline(config, progress=False)


@pytest.mark.parametrize("input_size", [64, [48, 64]], ids=["one-size", "pyramid"])
def test_pipeline_with_unfrozen_blocks_saves_the_tuned_backbone(
        tmp_path: Path, input_size: int | list[int]) -> None:
    from leafiqa.model.file import load_network
    from leafiqa.model.scorer import Scorer

    summary = run_tuned_pipeline(tmp_path, 64, {"input_size": input_size, "unfreeze_blocks": 1,
                                                "tail_epochs": 2}, budget=12)
    network, info = load_network(summary["model"])
    pristine = MultiLevelBackbone("efficientnet-lite0")
    assert not torch.equal(network.backbone.net._blocks[-1]._project_conv.weight,
                           pristine.net._blocks[-1]._project_conv.weight)
    assert torch.equal(network.backbone.net._blocks[0]._project_conv.weight,
                       pristine.net._blocks[0]._project_conv.weight)
    # the saved model (tuned backbone + head + calibration) loads and scores images
    test_paths = [tmp_path / "images" / f"im{i:02d}.jpg" for i in range(0, 48, 4)]
    scores = Scorer(summary["model"], runtime="torch").score_paths(test_paths)
    assert np.isfinite(scores).all() and info.input_sizes == as_sizes(input_size)


def test_full_finetuning_trains_every_layer_stem_included(tmp_path: Path) -> None:
    from leafiqa.model.file import load_network

    summary = run_tuned_pipeline(tmp_path, 48, {"input_size": 48, "finetune": "full",
                                                "tail_epochs": 2}, budget=8)
    assert "fine-tuned (full)" in summary["student"]
    network, _ = load_network(summary["model"])
    pristine = MultiLevelBackbone("efficientnet-lite0")
    for tuned, original in ((network.backbone.net._conv_stem, pristine.net._conv_stem),
                            (network.backbone.net._blocks[0]._project_conv,
                             pristine.net._blocks[0]._project_conv)):
        assert not torch.equal(tuned.weight, original.weight)
