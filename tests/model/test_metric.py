"""The pyiqa-compatible metric: create_metric by name or file, every input kind, as_loss."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leafiqa
from leafiqa.model.metric import LeafMetric
from leafiqa.model.registry import list_models, resolve_model
from leafiqa.model.scorer import Scorer
from tests.conftest import make_image, write_model_file

# pyiqa's documented signatures (IQA-PyTorch README / pyiqa.api_helpers / InferenceModel):
#   pyiqa.create_metric(metric_name, as_loss=False, device=None, **kwargs)
#   pyiqa.list_models(metric_mode=None, filter='', exclude_filters='')
#   InferenceModel(metric_name, as_loss=False, loss_weight=None, loss_reduction='mean',
#                  device=None, seed=123, check_input_range=True, **kwargs)
#   InferenceModel.forward(self, target, ref=None, **kwargs)
PYIQA = {
    "create_metric": [("metric_name", inspect.Parameter.empty), ("as_loss", False),
                      ("device", None)],
    "list_models": [("metric_mode", None), ("filter", ""), ("exclude_filters", "")],
    "InferenceModel": [("metric_name", inspect.Parameter.empty), ("as_loss", False),
                       ("loss_weight", None), ("loss_reduction", "mean"), ("device", None),
                       ("seed", 123), ("check_input_range", True)],
    "forward": [("target", inspect.Parameter.empty), ("ref", None)],
}


def named_parameters(function) -> list[tuple[str, object]]:  # noqa: ANN001
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()
            if p.kind is not p.VAR_KEYWORD and p.name != "self"]


def test_call_signatures_match_pyiqa() -> None:
    ours = {"create_metric": leafiqa.create_metric, "list_models": leafiqa.list_models,
            "InferenceModel": LeafMetric.__init__, "forward": LeafMetric.forward}
    for name, expected in PYIQA.items():
        actual = named_parameters(ours[name])
        for position, (parameter, default) in enumerate(expected):
            assert actual[position][0] == parameter, (name, actual)
            if default is not inspect.Parameter.empty:
                assert actual[position][1] == default, (name, parameter)
    # pyiqa's create_metric and forward take extra keyword arguments
    for function in (leafiqa.create_metric, LeafMetric.forward):
        kinds = [p.kind for p in inspect.signature(function).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD in kinds


@pytest.fixture(scope="module")
def metric_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_file(tmp_path_factory.mktemp("metric") / "mine.safetensors", [96])


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("photo") / "photo.png", seed=5, size=120)


def test_metric_attributes_and_every_input_kind(metric_file: Path, photo: Path) -> None:
    metric = leafiqa.create_metric(metric_file, device="cpu")
    assert metric.lower_better is False and metric.metric_mode == "NR"
    assert metric.score_range == (0.5, 4.5) and metric.device == torch.device("cpu")
    expected = Scorer(metric_file, runtime="torch")(photo)  # what `leaf score` gives
    rgb = Image.open(photo).convert("RGB")
    pixels = np.asarray(rgb)
    inputs = {
        "path": str(photo), "Path": photo, "PIL RGB": rgb, "PIL RGBA": rgb.convert("RGBA"),
        "PIL palette": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        "uint8": pixels, "uint16": pixels.astype(np.uint16) * 257,
        "float64 [0,1]": pixels / 255.0, "float32 CHW": (pixels / 255.0).astype(np.float32)
        .transpose(2, 0, 1),
    }
    for label, value in inputs.items():
        score = metric(value)
        assert score.shape == (1,), label
        tolerance = 0.05 if label == "PIL palette" else 1e-3
        assert float(score) == pytest.approx(expected, abs=tolerance), label
    grey = metric(np.asarray(rgb.convert("L")))
    assert grey.shape == (1,) and torch.isfinite(grey).all()
    sixteen = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    assert float(metric(sixteen)) == pytest.approx(float(grey), abs=0.2)  # scaled, not clipped


def test_tensors_lists_and_folders(metric_file: Path, photo: Path, tmp_path: Path) -> None:
    metric = leafiqa.create_metric(metric_file, device="cpu")
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255)
    batch = torch.stack([tensor, tensor.flip(-1)])
    scores = metric(batch)
    assert scores.shape == (2,) and not scores.requires_grad
    # torch resizing (antialiased bilinear) is within a hair of the PIL path
    assert float(scores[0]) == pytest.approx(float(metric(photo)), abs=0.05)
    assert metric(tensor).shape == (1,)
    for i in range(3):
        make_image(tmp_path / f"f{i}.jpg", seed=i)
    folder = metric(tmp_path)
    assert folder.shape == (3,)
    listed = metric([tmp_path / "f0.jpg", str(tmp_path / "f1.jpg"), Image.open(photo)])
    assert float(listed[0]) == pytest.approx(float(folder[0]), abs=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric(batch * 2)
    with pytest.raises(ValueError, match="no-reference"):
        metric(batch, batch)
    with pytest.raises(leafiqa.data.manifest.DataError, match="float image"):
        metric(pixels * 2.0)
    with pytest.raises(TypeError, match="cannot score"):
        metric(42)


def test_as_loss_is_differentiable_end_to_end(metric_file: Path, photo: Path) -> None:
    loss = leafiqa.create_metric(metric_file, as_loss=True, device="cpu")
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div(255)
    x = x.repeat(2, 1, 1, 1).requires_grad_(True)
    value = loss(x)
    assert value.shape == () and value.requires_grad
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())  # the metric itself stays frozen
    # a step along the gradient raises the score: it is the score's true gradient
    with torch.no_grad():
        before = float(loss(x))
        after = float(loss((x + 0.5 * x.grad / x.grad.abs().max()).clamp(0, 1)))
    assert after > before
    summed = leafiqa.create_metric(metric_file, as_loss=True, loss_weight=2.0,
                                   loss_reduction="none", device="cpu")(x.detach())
    assert summed.shape == (2,) and float(summed.mean()) == pytest.approx(2 * before, rel=1e-4)


def test_user_models_register_by_folder(metric_file: Path, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "studio-photos.safetensors").write_bytes(metric_file.read_bytes())
    monkeypatch.setenv("LEAF_MODEL_PATH", str(mine))
    assert "studio-photos" in list_models()
    assert list_models(filter="studio*") == ["studio-photos"]
    assert "studio-photos" not in list_models(exclude_filters="studio*")
    assert list_models(metric_mode="FR") == []
    assert resolve_model("studio-photos") == mine / "studio-photos.safetensors"
    assert leafiqa.create_metric("studio-photos", device="cpu").score_range == (0.5, 4.5)
    with pytest.raises(FileNotFoundError, match="studio-photos"):
        resolve_model("no-such-model")
