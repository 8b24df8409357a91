"""``create_metric`` reads in-memory inputs through ``image_from_any`` (integer arrays, PIL modes
"I" and "F", bytes, EXIF orientation, NaN refused), takes pyiqa's ``list_models`` filter forms,
and scores folders and lists batch by batch with a progress bar."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leafiqa
from leafiqa.errors import DataError
from leafiqa.model.registry import list_models
from tests.conftest import make_image, write_model_file


@pytest.fixture(scope="module")
def metric(tmp_path_factory: pytest.TempPathFactory) -> leafiqa.LeafMetric:
    path = write_model_file(tmp_path_factory.mktemp("metric") / "conv.safetensors", [96])
    return leafiqa.create_metric(path, device="cpu")


@pytest.fixture(scope="module")
def rgb(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = make_image(tmp_path_factory.mktemp("photo") / "p.png", seed=3, size=120)
    return np.asarray(Image.open(path).convert("RGB"))[:, :100]  # not square: rotations show


def score(metric: leafiqa.LeafMetric, image: object) -> float:
    return float(metric(image)[0])


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint32])
def test_an_integer_array_of_0_to_255_scores_as_its_uint8_image(metric, rgb, dtype) -> None:
    assert score(metric, rgb.astype(dtype)) == pytest.approx(score(metric, rgb), abs=1e-5)


def test_pil_modes_i_and_f_score_as_the_grey_image(metric, rgb) -> None:
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    expected = score(metric, Image.fromarray(grey, "L"))
    assert score(metric, Image.fromarray(grey.astype(np.int32), "I")) == pytest.approx(
        expected, abs=1e-5)
    assert score(metric, Image.fromarray(grey.astype(np.float32) / 255, "F")) == pytest.approx(
        expected, abs=1e-5)


def test_bytes_score_as_the_encoded_image(metric, rgb) -> None:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    expected = score(metric, rgb)
    for kind in (bytes, bytearray, memoryview):
        assert score(metric, kind(buffer.getvalue())) == pytest.approx(expected, abs=1e-5)


def test_a_pil_image_with_exif_orientation_scores_upright(metric, rgb) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: rotate 90° clockwise to show
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", exif=exif)
    tagged = Image.open(io.BytesIO(buffer.getvalue()))
    upright = np.asarray(Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_270))
    assert score(metric, upright) != pytest.approx(score(metric, rgb), abs=1e-4)
    assert score(metric, tagged) == pytest.approx(score(metric, upright), abs=1e-5)


def test_nan_inputs_are_one_clear_error(metric, rgb) -> None:
    tensor = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float()[None] / 255
    tensor[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN or infinite"):
        metric(tensor)
    with pytest.raises(DataError, match="NaN or infinite"):
        metric(tensor[0].numpy())
    with pytest.raises(DataError, match="empty"):
        metric(torch.zeros(0, 3, 8, 8))


def test_list_models_takes_pyiqas_filter_forms() -> None:
    assert list_models(filter=["leaf-agiqa3k", "leaf-cl*"]) == ["leaf-agiqa3k", "leaf-clive"]
    assert list_models(filter=["leaf-agiqa*"]) == ["leaf-agiqa3k", "leaf-agiqa3k-10pct"]
    assert list_models(filter=("*clive",)) == ["leaf-clive"]
    assert list_models(filter="leaf-*", exclude_filters=["*agiqa*"]) == ["leaf-clive"]
    assert list_models(metric_mode="NR", filter=["nothing*"]) == []
    assert list_models(metric_mode="FR") == []
    with pytest.raises(ValueError, match="metric_mode"):
        list_models(metric_mode="XR")


def test_a_folder_streams_in_batches_with_a_progress_bar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from leafiqa.data import images

    path = write_model_file(tmp_path / "stream.safetensors", [96])
    metric = leafiqa.create_metric(path, device="cpu", batch_size=2)
    for index in range(12):
        make_image(tmp_path / "folder" / f"i{index:02d}.jpg", seed=index)
    decoded: list[int] = []
    decoded_before_first_score: list[int] = []
    to_rgb = images.to_rgb
    monkeypatch.setattr(images, "to_rgb", lambda image: decoded.append(1) or to_rgb(image))
    metric.net.register_forward_pre_hook(
        lambda *_: decoded_before_first_score.append(len(decoded)))
    scores = metric(tmp_path / "folder")
    assert scores.shape == (12,) and len(decoded) == 12
    # the first batch was scored while most images were still to be decoded
    assert decoded_before_first_score[0] <= 8
    assert "12/12" in capsys.readouterr().err
    assert metric(tmp_path / "folder").shape == (12,)
