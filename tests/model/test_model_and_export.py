from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leafiqa.data.images import load_model_input
from leafiqa.model.file import load_network, read_info
from leafiqa.model.onnx_export import export_model_onnx
from leafiqa.model.scorer import Scorer
from tests.conftest import AGIQA, needs_agiqa

pytest.importorskip("onnxruntime")


def test_model_file_round_trip_without_pickle(model_file: Path) -> None:
    info = read_info(model_file)
    assert info.backbone == "efficientnet-lite0" and info.input_sizes == (96,)
    assert info.score_map.kind == "logistic4" and info.teacher_ids == ["qbench:test"]
    network, _ = load_network(model_file)
    assert model_file.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    header_size = int.from_bytes(model_file.read_bytes()[:8], "little")
    header = json.loads(model_file.read_bytes()[8:8 + header_size])
    assert header["__metadata__"]["format"] == "leaf-model/1"
    assert sum(p.numel() for p in network.parameters()) > 3_000_000


def test_not_a_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"hello")
    with pytest.raises(ValueError, match="x.safetensors"):
        read_info(bogus)


def test_scores_are_calibrated_and_runtimes_agree(model_file: Path, image_folder: Path) -> None:
    paths = sorted(image_folder.glob("*.jpg"))
    torch_scores = Scorer(model_file, runtime="torch").score_paths(paths)
    onnx_scores = Scorer(model_file, runtime="onnx").score_paths(paths)
    assert np.all((torch_scores > 0.5) & (torch_scores < 4.5))  # inside the logistic's range
    assert np.abs(torch_scores - onnx_scores).max() < 1e-4
    scorer = Scorer(model_file, runtime="torch")
    assert scorer(paths[0]) == pytest.approx(torch_scores[0], abs=1e-5)


def test_unreadable_file_is_nan_not_dropped(model_file: Path, image_folder: Path) -> None:
    bad = image_folder / "bad.jpg"
    bad.write_bytes(b"nope")
    scores = Scorer(model_file, runtime="torch").score_paths([image_folder / "image_00.jpg", bad])
    assert np.isfinite(scores[0]) and np.isnan(scores[1])


def test_onnx_graph_has_dynamic_batch(model_file: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    path = export_model_onnx(model_file, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        out = session.run(None, {"images": np.zeros((batch, 3, 96, 96), np.float32)})[0]
        assert out.shape == (batch,)


@needs_agiqa
def test_onnx_matches_pytorch_on_real_images(model_file: Path) -> None:
    import torch

    paths = sorted((AGIQA / "images").glob("*.jpg"))[:: 300][:10]
    pixels = np.stack([load_model_input(p, 96) for p in paths])
    network, _ = load_network(model_file)
    with torch.inference_mode():
        expected = network(torch.from_numpy(pixels)).numpy()
    onnx = Scorer(model_file, runtime="onnx").score_array(pixels)
    assert np.abs(expected - onnx).max() < 1e-4


def test_pyramid_model_records_its_sizes_and_runtimes_agree(pyramid_model_file: Path,
                                                           image_folder: Path,
                                                           tmp_path: Path) -> None:
    import onnxruntime as ort

    assert read_info(pyramid_model_file).input_sizes == (64, 96)
    path = export_model_onnx(pyramid_model_file, tmp_path / "p.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images_64", "images_96"]
    paths = sorted(image_folder.glob("*.jpg"))
    torch_scores = Scorer(pyramid_model_file, runtime="torch").score_paths(paths)
    onnx_scores = Scorer(pyramid_model_file, runtime="onnx").score_paths(paths)
    assert np.abs(torch_scores - onnx_scores).max() < 1e-4
    scorer = Scorer(pyramid_model_file, runtime="onnx")
    assert scorer(paths[1]) == pytest.approx(onnx_scores[1], abs=1e-5)
    with pytest.raises(ValueError, match="2 input size"):
        scorer.score_array(np.zeros((1, 3, 64, 64), np.float32))


def test_pyramid_model_scores_what_training_features_predict(pyramid_model_file: Path,
                                                            image_folder: Path,
                                                            tmp_path: Path) -> None:
    """The cached features a head is trained on (one cache per size, concatenated) and the
    deployed network must see the same numbers, or calibration is fitted to another model."""
    from leafiqa.data.manifest import ImageItem, Manifest
    from leafiqa.student.features import FeatureExtractor

    network, info = load_network(pyramid_model_file)
    paths = sorted(image_folder.glob("*.jpg"))
    manifest = Manifest([ImageItem(path=p, name=p.name) for p in paths], "folder")
    keys = [p.name for p in paths]
    extractor = FeatureExtractor(info.backbone, info.input_sizes, tmp_path / "cache")
    features = extractor.transform(manifest, keys, progress=False)
    single = [FeatureExtractor(info.backbone, size, tmp_path / "cache").transform(
        manifest, keys, progress=False) for size in info.input_sizes]
    assert np.array_equal(features, np.concatenate(single, axis=1))
    expected = info.score_map(network.head.predict(features))
    scores = Scorer(pyramid_model_file, runtime="torch").score_paths(paths)
    assert np.abs(scores - expected).max() < 1e-3
