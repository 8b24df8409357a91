"""Graphs derived from a model file (``MODEL.onnx``, ``MODEL.int8.onnx``, the cached graphs
in ``$LEAF_CACHE/graphs``) are used only for the file whose SHA-256 they record, are written
atomically, and a damaged one is rebuilt or ignored, never fatal."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.model.file import LeafNetwork, ModelInfo, save_model
from leafiqa.model.onnx_export import (
    MODEL_SHA_KEY,
    atomic_output,
    export_model_onnx,
    graph_metadata,
    model_sha256,
)
from leafiqa.model.scorer import Scorer, pixel_graph
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.head import QualityHead
from tests.conftest import make_image


def other_model(path: Path, sizes: Sequence[int] = (96,)) -> Path:
    """A model of the same shape as ``write_model_file``'s, with another head and another
    calibration: it scores the same image differently."""
    rng = np.random.default_rng(1)
    backbone = MultiLevelBackbone("efficientnet-lite0")
    dim = backbone.feature_dim * len(sizes)
    head = QualityHead(dim, hidden=32, dropout=0.0, components=16)
    head.set_normalisation(rng.normal(size=(64, dim)).astype(np.float32) * 3)
    score_map = ScoreMap("logistic4", [4.5, 0.5, 1.0, 0.5], 100)
    info = ModelInfo(backbone="efficientnet-lite0", input_sizes=tuple(sizes), head=head.config(),
                     score_map=score_map, teacher_ids=["qbench:test"], manifest_hash="def",
                     mos_range=(0.5, 4.5))
    return save_model(path, LeafNetwork(backbone, head, score_map).eval(), info)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache folder's graphs (``$LEAF_CACHE/graphs``), a fresh one per test."""
    monkeypatch.setenv("LEAF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "graphs"


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    return [make_image(tmp_path / "img" / f"{i}.jpg", seed=i, size=128) for i in range(4)]


def levels(photos: list[Path]) -> np.ndarray:
    from leafiqa.data.images import load_model_input

    return np.stack([load_model_input(p, 96) for p in photos])


def test_a_model_replaced_by_another_does_not_keep_the_old_graph(
        model_file: Path, tmp_path: Path, home: Path, photos: list[Path]) -> None:
    from fastapi.testclient import TestClient

    from leafiqa.serve.service import create_app

    replacement = other_model(tmp_path / "other.safetensors")
    model = tmp_path / "served" / "model.safetensors"
    model.parent.mkdir()
    shutil.copy2(model_file, model)
    export_model_onnx(model)  # model.onnx beside it, for the first model
    shutil.copy2(replacement, model)  # `cp -p`: the new file keeps its older date
    old = model.with_suffix(".onnx").stat().st_mtime - 3600
    os.utime(model, (old, old))
    expected = Scorer(replacement, runtime="torch").score_array(levels(photos))
    first = Scorer(model_file, runtime="torch").score_array(levels(photos))
    assert not np.allclose(expected, first, atol=1e-3)  # the two models do differ
    np.testing.assert_allclose(Scorer(model, runtime="onnx").score_array(levels(photos)),
                               expected, atol=2e-4)
    with TestClient(create_app(model, runtime="onnx")) as client:
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        served = client.post("/score", files=files).json()["scores"]
    np.testing.assert_allclose(served, Scorer(replacement, runtime="torch").score_paths(photos),
                               atol=2e-4)


def test_exported_graphs_record_the_model_files_hash(model_file: Path, tmp_path: Path,
                                                     home: Path) -> None:
    sha = model_sha256(model_file)
    assert graph_metadata(export_model_onnx(model_file, tmp_path / "m.onnx"))[MODEL_SHA_KEY] == sha
    path, parity = pixel_graph(model_file, "fp32")
    assert parity is None and path.parent == home
    assert graph_metadata(path)[MODEL_SHA_KEY] == sha


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_cached_graph_is_rebuilt_not_fatal(model_file: Path, home: Path,
                                                     photos: list[Path], damage: str) -> None:
    expected = Scorer(model_file, runtime="onnx", precision="fp32").score_paths(photos)
    cached = sorted((home).glob("*-pixels.onnx"))
    assert len(cached) == 1
    data = cached[0].read_bytes()
    cached[0].write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x08\x07junk" * 99,
                           "empty": b""}[damage])
    again = Scorer(model_file, runtime="onnx", precision="fp32").score_paths(photos)
    np.testing.assert_allclose(again, expected, atol=1e-6)
    assert graph_metadata(cached[0])[MODEL_SHA_KEY] == model_sha256(model_file)
    # the float-input graph's cache entry too
    Scorer(model_file, runtime="onnx").score_array(levels(photos))
    float_graph = next(p for p in (home).glob("*.onnx")
                       if not p.name.endswith("-pixels.onnx"))
    float_graph.write_bytes(float_graph.read_bytes()[:1000])
    Scorer(model_file, runtime="onnx").score_array(levels(photos))
    assert graph_metadata(float_graph)[MODEL_SHA_KEY] == model_sha256(model_file)


def test_a_damaged_int8_graph_is_ignored(model_file: Path, tmp_path: Path, home: Path,
                                         photos: list[Path]) -> None:
    model = tmp_path / "m.safetensors"
    shutil.copy2(model_file, model)
    model.with_suffix(".int8.onnx").write_bytes(b"\x08\x07" + b"\x00" * 100)
    scorer = Scorer(model, runtime="onnx")
    assert scorer.engine == "onnx"  # FP32: the damaged INT8 graph is not used
    assert np.isfinite(scorer.score_paths(photos)).all()
    with pytest.raises(FileNotFoundError, match="no usable INT8 graph"):
        pixel_graph(model, "int8")


def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "graph.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_bytes(b"half of a gra")
        raise RuntimeError("killed mid-export")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_output(target) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]


def test_scorer_on_pil_images_needs_no_files(model_file: Path, home: Path) -> None:
    image = Image.new("RGB", (300, 200), (90, 120, 30))
    assert np.isfinite(Scorer(model_file, runtime="onnx")(image))


def test_the_optimised_copy_scores_the_same_and_a_damaged_one_is_made_again(
        model_file: Path, home: Path, photos: list[Path]) -> None:
    first = Scorer(model_file, runtime="onnx", precision="fp32").score_paths(photos)
    copies = sorted((home / "optimised").glob("*.onnx"))
    assert len(copies) == 1  # ONNX Runtime's optimised graph, saved on first use
    again = Scorer(model_file, runtime="onnx", precision="fp32").score_paths(photos)
    np.testing.assert_allclose(again, first, atol=1e-6)  # read from the copy
    copies[0].write_bytes(copies[0].read_bytes()[:500])
    third = Scorer(model_file, runtime="onnx", precision="fp32").score_paths(photos)
    np.testing.assert_allclose(third, first, atol=1e-6)
    assert graph_metadata(copies[0])[MODEL_SHA_KEY] == model_sha256(model_file)  # made again
