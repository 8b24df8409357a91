"""Hugging Face backbones without downloads: tiny random models (a 2-stage ConvNeXt, 2-layer
ViTs) saved with save_pretrained into a tmp folder and used as ``hf:/tmp/...`` run the whole
pipeline — ``leaf run``, ``leaf export --quantize int8``, ``leaf score``, ``create_metric``, the
service — and the model file loads in a fresh process with no hub access and no folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, make_image, write_recorded_dataset

transformers = pytest.importorskip("transformers", reason="the transformers extra is not "
                                   "installed (pip install 'leaf-iqa[transformers]')")

from leafiqa.cli import app  # noqa: E402
from leafiqa.student.backbone import (  # noqa: E402
    backbone_from_spec,
    backbone_spec_json,
    build_backbone,
    cache_id,
    feature_blocks,
)

runner = CliRunner()


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    vit = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
           "intermediate_size": 32, "image_size": 32, "patch_size": 8}
    return {
        "convnext": transformers.ConvNextModel(transformers.ConvNextConfig(
            hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)),
        "dinov2": transformers.Dinov2Model(transformers.Dinov2Config(**vit)),
        "clip": transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**vit)),
    }


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-models")
    folders = {}
    for name, model in tiny_models().items():
        model.save_pretrained(root / name)
        folders[name] = root / name
    return folders


@pytest.mark.parametrize("name", ["convnext", "dinov2", "clip"])
def test_features_blocks_and_spec_rebuild_the_same_network(tiny_folders: dict[str, Path],
                                                           name: str) -> None:
    spec_name = f"hf:{tiny_folders[name]}"
    backbone = build_backbone(spec_name).eval()
    images = torch.randn(2, 3, 64, 64)
    features = backbone(images)
    assert features.shape == (2, sum(feature_blocks(spec_name, 1)))
    assert sum(feature_blocks(spec_name, 2)) == 2 * features.shape[1]
    if name == "convnext":  # stage ends: mean and std of 8 then 16 channels
        assert feature_blocks(spec_name, 1) == (8, 8, 16, 16)
    else:  # two layers' token mean and std, and the class token
        assert feature_blocks(spec_name, 1) == (16,) * 5
    spec = json.loads(backbone_spec_json(backbone) or "{}")
    assert spec["id"] == f"hf:local/{name}" and spec["revision"].startswith("sha256:")
    assert str(tiny_folders[name]) not in json.dumps(spec)
    rebuilt = backbone_from_spec("ignored", backbone_spec_json(backbone)).eval()
    rebuilt.load_state_dict(backbone.state_dict())
    assert torch.allclose(rebuilt(images), features, atol=1e-5)
    # the cache key changes with the weights, not only with the folder's name
    assert cache_id(spec_name).startswith(f"hf-local_{name}-")


def test_clip_reads_its_own_normalisation(tiny_folders: dict[str, Path]) -> None:
    clip = build_backbone(f"hf:{tiny_folders['clip']}")
    mean, std = np.array(clip.spec.mean), np.array(clip.spec.std)
    assert clip.renormalise and np.allclose(mean, [0.48145466, 0.4578275, 0.40821073])
    imagenet = torch.full((1, 3, 1, 1), 0.5)  # a pixel of 0.5·std + mean in ImageNet terms
    raw = 0.5 * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    expected = (raw - torch.as_tensor(mean, dtype=torch.float32)) / torch.as_tensor(
        std, dtype=torch.float32)
    assert torch.allclose((imagenet * clip.scale + clip.shift).view(3), expected, atol=1e-5)


def _tiny_run(tmp_path: Path, backbone: str, distill: dict | None = None,
              **student: object) -> Path:
    """``leaf run`` on 36 images made here, recorded teacher, 30 % labels → the model file."""
    csv, recorded = write_recorded_dataset(
        tmp_path / "data", 36, mos=lambda i: round(1 + (i % 9) / 2, 2),
        logit_good=lambda i: (i % 9) / 4, split=lambda i: "test" if i % 4 == 0 else "train",
        blur=lambda i: (8 - i % 9) * 0.4, size=80)
    config = {
        "data": {"kind": "csv", "path": str(csv), "split": "split"},
        "teacher": {"spec": f"qbench:{recorded}", "fallback": "cues", "pairs_per_image": 2},
        "student": {"backbone": backbone, "input_size": [64, 96], **student},
        "labels": {"budget": 0.3},
        "distill": distill or {},
        "output": str(tmp_path / "run"),
        "cache": str(tmp_path / "cache"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["run", str(tmp_path / "run.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run" / "leaf-model.safetensors"


def _offline_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home"),
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("name", ["convnext", "dinov2"])
def test_leaf_run_export_score_metric_serve_with_a_tiny_hf_backbone(
        tmp_path: Path, tiny_folders: dict[str, Path], name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import leafiqa
    from leafiqa.model import quantize
    from leafiqa.model.file import read_info
    from leafiqa.model.scorer import Scorer

    # a copy of the folder, removed before the fresh process scores: the model file suffices
    folder = tmp_path / name
    shutil.copytree(tiny_folders[name], folder)
    model = _tiny_run(tmp_path, f"hf:{folder}")
    info = read_info(model)
    assert info.backbone == f"hf:local/{name}" and json.loads(info.backbone_spec)["config"]
    header = model.read_bytes()[:200_000]
    assert str(folder).encode() not in header  # the backbone's folder is not recorded
    assert any(f.name.startswith(f"features-{cache_id('hf:' + str(folder))}-")
               for f in (tmp_path / "cache").iterdir())
    images = sorted((tmp_path / "data").glob("im*.jpg"))

    monkeypatch.setattr(quantize, "MIN_SRCC", -1.0)  # a random backbone: accept its parity
    result = runner.invoke(app, ["export", str(model), "--quantize", "int8", "--data",
                                 str(tmp_path / "data" / "data.csv"), "--calibration", "8",
                                 "--parity", "8"])
    assert result.exit_code == 0, result.output
    assert quantize.read_parity(quantize.int8_path(model)) is not None

    result = runner.invoke(app, ["score", str(model), *map(str, images[:6]),
                                 "--out", str(tmp_path / "scores.csv"), "--runtime", "onnx"])
    assert result.exit_code == 0, result.output
    expected = Scorer(model, runtime="torch").score_paths(images[:6])
    fp32 = Scorer(model, runtime="onnx", precision="fp32").score_paths(images[:6])
    assert np.allclose(fp32, expected, atol=1e-3)
    assert np.std(expected) > 0  # the images are told apart

    metric = leafiqa.create_metric(model, device="cpu")
    from PIL import Image

    pixels = np.asarray(Image.open(images[0]).convert("RGB"))
    assert float(metric(pixels)) == pytest.approx(float(expected[0]), abs=1e-3)

    from fastapi.testclient import TestClient

    from leafiqa.serve.service import create_app

    with TestClient(create_app(model, runtime="torch", max_batch=8)) as client:
        answer = client.post("/score", files=[("files", (p.name, p.read_bytes(), "image/jpeg"))
                                              for p in images[:2]]).json()
    assert answer["scores"] == pytest.approx([float(s) for s in expected[:2]], abs=1e-3)

    shutil.rmtree(folder)
    fresh = subprocess.run(
        [sys.executable, "-c", "import sys; from leafiqa.model.scorer import Scorer; "
         "print(*Scorer(sys.argv[1], runtime='torch').score_paths(sys.argv[2:]))",
         str(model), *map(str, images[:3])],
        capture_output=True, text=True, env=_offline_env(tmp_path), timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert np.allclose([float(s) for s in fresh.stdout.split()], expected[:3], atol=1e-4)


def test_full_finetune_of_a_tiny_hf_backbone_changes_its_weights(
        tmp_path: Path, tiny_folders: dict[str, Path]) -> None:
    from leafiqa.model.file import load_network

    # no validation slice: the tuned state is kept even where it validates worse
    model = _tiny_run(tmp_path, f"hf:{tiny_folders['convnext']}", {"val_fraction": 0.0},
                      finetune="full", tail_epochs=1, tail_lr=1e-3)
    network, info = load_network(model)
    assert info.notes["finetune"] == "full"
    pristine = build_backbone(f"hf:{tiny_folders['convnext']}")
    tuned = network.backbone.state_dict()
    changed = [k for k, v in pristine.state_dict().items()
               if not torch.allclose(v, tuned[k])]
    assert changed and any("stages.0" in k for k in changed)  # every layer trained


def test_hub_id_without_network_or_copy_is_one_error_line(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "a.jpg", seed=1)
    config = {"data": {"kind": "folder", "path": str(tmp_path / "images"), "split": None},
              "teacher": {"spec": "cues"},
              "student": {"backbone": "hf:nobody-here/no-such-model"},
              "output": str(tmp_path / "run"), "cache": str(tmp_path / "cache")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "leafiqa", "run", str(tmp_path / "run.yaml"),
                           "--quiet"], capture_output=True, text=True,
                          env=_offline_env(tmp_path), timeout=120)
    lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines()
             if line.startswith("error:")]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "nobody-here/no-such-model" in lines[0]
    assert "huggingface-cli download" in lines[0] and "Traceback" not in done.stderr


def test_unknown_backbone_name_is_a_config_error(tmp_path: Path) -> None:
    from leafiqa.config import load_config
    from leafiqa.errors import ConfigError

    (tmp_path / "c.yaml").write_text("student:\n  backbone: resnet-50\n")
    with pytest.raises(ConfigError, match="backbone"):
        load_config(tmp_path / "c.yaml")


def test_cli_stages_distill_then_calibrate_with_a_tiny_hf_backbone(
        tmp_path: Path, tiny_folders: dict[str, Path]) -> None:
    """``leaf distill --backbone hf:FOLDER`` then ``leaf calibrate``: calibration rebuilds the
    backbone from the model file (its folder may be gone) and reads the same cached features."""
    from leafiqa.model.file import read_info

    csv, recorded = write_recorded_dataset(
        tmp_path / "data", 24, mos=lambda i: round(1 + (i % 6) / 2, 2),
        logit_good=lambda i: (i % 6) / 3, split=lambda i: "test" if i % 4 == 0 else "train",
        blur=lambda i: (5 - i % 6) * 0.5, size=80)
    folder = tmp_path / "dinov2"
    shutil.copytree(tiny_folders["dinov2"], folder)
    store, cache = tmp_path / "j.sqlite", tmp_path / "cache"
    result = runner.invoke(app, ["teach", "--data", str(csv), "--split", "split", "--teacher",
                                 f"qbench:{recorded}", "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    student = tmp_path / "student.safetensors"
    result = runner.invoke(app, ["distill", "--data", str(csv), "--split", "split", "--store",
                                 str(store), "--out", str(student), "--input-size", "64",
                                 "--backbone", f"hf:{folder}", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    cached = sorted(f.name for f in cache.glob("features-*.npz"))
    shutil.rmtree(folder)
    result = runner.invoke(app, ["calibrate", str(student), "--labels", str(csv), "--split",
                                 "split", "--budget", "6", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    calibrated = tmp_path / "student-calibrated.safetensors"
    assert read_info(calibrated).backbone == "hf:local/dinov2"
    assert sorted(f.name for f in cache.glob("features-*.npz")) == cached  # the same key
    result = runner.invoke(app, ["evaluate", str(calibrated), "--data", str(csv), "--split",
                                 "split", "--runtime", "torch"])
    assert result.exit_code == 0, result.output


def test_trainable_tail_is_the_last_stages_or_layers_and_what_follows(
        tiny_folders: dict[str, Path]) -> None:
    for name, stack in (("convnext", "encoder.stages"), ("dinov2", "encoder.layer")):
        backbone = build_backbone(f"hf:{tiny_folders[name]}")
        names = {id(p): n for n, p in backbone.model.named_parameters()}
        last = {names[id(p)] for p in backbone.trainable_tail(1)}
        assert backbone.block_count == 2
        assert any(n.startswith(f"{stack}.1.") for n in last)
        assert not any(n.startswith((f"{stack}.0.", "embeddings")) for n in last)
        assert any(not n.startswith(stack) for n in last)  # the final norm
        every = backbone.trainable_tail(backbone.block_count + 1)
        assert len(every) == len(list(backbone.model.parameters()))
        assert backbone.trainable_tail(0) == []
