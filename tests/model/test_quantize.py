"""INT8 export (``leaf export --quantize int8``), the uint8-pixel scoring path and the fast
JPEG decode it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from leafiqa.data.images import load_pixels, open_rgb
from leafiqa.data.pixels import iter_pixel_batches
from leafiqa.model import quantize
from leafiqa.model.scorer import Scorer
from tests.conftest import make_image, write_model_file

pytest.importorskip("onnxruntime")


@pytest.fixture
def many_images(tmp_path: Path) -> list[Path]:
    return [make_image(tmp_path / "imgs" / f"im{i:02d}.jpg", seed=i, blur=(i % 5) * 0.7, size=80)
            for i in range(20)]


def test_int8_graph_records_parity_and_scoring_uses_it_when_accepted(
        tmp_path: Path, many_images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_model_file(tmp_path / "m.safetensors", [64])
    monkeypatch.setattr(quantize, "MIN_SRCC", -1.0)  # accept whatever the random head gives
    path, record = quantize.quantize_int8(model, many_images, calibration=8, parity=12)
    assert path == tmp_path / "m.int8.onnx" and quantize.read_parity(path) == record
    assert record.images == 12 and record.calibration_images == 8 and record.accepted
    assert record.model_sha == quantize.model_digest(model)
    assert record.fp32_blocks == quantize.FP32_BLOCKS
    assert record.quantized_ops.split(",") == quantize.QUANTIZED_OPS
    fp32 = Scorer(model, runtime="onnx", precision="fp32")
    int8 = Scorer(model, runtime="onnx")
    assert fp32.engine == "onnx" and int8.engine == "onnx-int8" and int8.parity == record
    a, b = fp32.score_paths(many_images), int8.score_paths(many_images)
    assert np.abs(a - b).mean() == pytest.approx(record.mean_abs_diff, abs=0.5)
    assert np.abs(a - b).max() > 0  # really another graph
    torch_scores = Scorer(model, runtime="torch").score_paths(many_images)
    assert np.abs(torch_scores - a).max() < 1e-4  # the pixel graph normalises like torch


def test_rejected_or_foreign_int8_graph_is_not_used_by_default(
        tmp_path: Path, many_images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_model_file(tmp_path / "m.safetensors", [64])
    monkeypatch.setattr(quantize, "MIN_SRCC", 2.0)  # nothing can pass
    _, record = quantize.quantize_int8(model, many_images, calibration=8, parity=8)
    assert not record.accepted
    assert Scorer(model, runtime="onnx").engine == "onnx"
    assert Scorer(model, runtime="onnx", precision="int8").engine == "onnx-int8"  # insisted on
    other = write_model_file(tmp_path / "other.safetensors", [96])
    (tmp_path / "m.int8.onnx").rename(tmp_path / "other.int8.onnx")
    assert Scorer(other, runtime="onnx").engine == "onnx"  # belongs to another model file
    with pytest.raises(FileNotFoundError, match="quantize int8"):
        Scorer(other, runtime="onnx", precision="int8").engine  # noqa: B018


def test_early_layers_stay_fp32_and_activations_run_in_int8(
        tmp_path: Path, many_images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    model = write_model_file(tmp_path / "m.safetensors", [64])
    monkeypatch.setattr(quantize, "MIN_SRCC", -1.0)
    path, _ = quantize.quantize_int8(model, many_images, calibration=8, parity=8)
    nodes = onnx.load(str(path)).graph.node
    producers = {out: node for node in nodes for out in node.output}

    def quantized(node: onnx.NodeProto) -> bool:  # its first input comes out of a DQ node
        source = producers.get(node.input[0])
        return source is not None and source.op_type == "DequantizeLinear"

    convs = [n for n in nodes if n.op_type == "Conv"]
    early = [n for n in convs if "_conv_stem" in n.name or "_blocks.0/" in n.name]
    late = [n for n in convs if n not in early]
    assert early and not any(quantized(n) for n in early)
    assert late and all(quantized(n) for n in late)
    adds = [n for n in nodes if n.op_type == "Add" and "_blocks." in n.name]
    assert adds and all(quantized(n) for n in adds)  # residual adds read 8-bit tensors


def test_parity_records_written_before_the_quantization_fields_still_load() -> None:
    old = {"images": 128, "calibration_images": 64, "srcc": 0.998, "mean_abs_diff": 0.02,
           "max_abs_diff": 0.1, "fp32_score_std": 0.9, "accepted": True, "quant_format": "qdq",
           "model_sha": "ae3310bd6395eeba", "created": "2026-11-29T05:43:03Z"}
    record = quantize.Parity(**old)
    assert record.fp32_blocks is None and record.quantized_ops == "" and record.accepted


def test_export_cli_quantizes_and_reports_parity(tmp_path: Path, many_images: list[Path]) -> None:
    from leafiqa.cli import app

    model = write_model_file(tmp_path / "m.safetensors", [64])
    result = CliRunner().invoke(app, ["export", str(model), "--quantize", "int8", "--data",
                                      str(many_images[0].parent), "--calibration", "8",
                                      "--parity", "8"])
    assert result.exit_code == 0, result.output
    assert "INT8 vs FP32 on 8 held-out images: SRCC" in result.output
    assert (tmp_path / "m.int8.onnx").is_file()
    missing = CliRunner().invoke(app, ["export", str(model), "--quantize", "int8"])
    assert missing.exit_code == 2 and "--data" in missing.output


def test_a_jpeg_below_twice_the_decode_side_is_decoded_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    path = tmp_path / "big.jpg"
    base.resize((1600, 1200), Image.BICUBIC).save(path, quality=95)
    fast = load_pixels(path, (224, 512))
    full = open_rgb(path)
    slow = [np.asarray(full.resize((s, s), Image.BILINEAR)) for s in (224, 512)]
    for got, want, size in zip(fast, slow, (224, 512), strict=True):
        assert got.shape == (size, size, 3) and got.dtype == np.uint8
        assert np.array_equal(got, want)  # 1200 px < 2 × 1024: the very pixels of a full decode


def test_pixel_batches_keep_order_and_report_failures(tmp_path: Path,
                                                      many_images: list[Path]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    paths = [*many_images[:7], bad, *many_images[7:], tmp_path / "missing.jpg"]
    batches = list(iter_pixel_batches(paths, (32, 48), batch_size=4, threads=2))
    seen = [i for b in batches for i in b.indices]
    failed = [i for b in batches for i, _ in b.failures]
    assert seen == [i for i in range(len(paths)) if i not in (7, len(paths) - 1)]
    assert failed == [7, len(paths) - 1]
    assert all(b.pixels[1].shape[1:] == (48, 48, 3) for b in batches)
