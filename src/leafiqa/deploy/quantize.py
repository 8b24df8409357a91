"""INT8 student: ONNX Runtime static quantization of the uint8-pixel scoring graph, calibrated on
a sample of training images, with a parity check against FP32 written into the graph.

``leaf export MODEL --quantize int8 --data TRAIN`` writes ``MODEL.int8.onnx`` beside the model
file; ``leaf score`` then runs it by default when its recorded parity check passed (rank
correlation with the FP32 scores ≥ ``MIN_SRCC`` on images not used for calibration)."""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from leafiqa.data.pixels import iter_pixel_batches
from leafiqa.deploy.modelfile import read_info
from leafiqa.deploy.onnx_export import (
    atomic_output,
    export_pixel_onnx,
    graph_metadata,
    model_sha256,
    pixel_input_names,
    stamp_graph,
)
from leafiqa.errors import ConfigError, DataError

METADATA_KEY = "leaf_int8_parity"
MIN_SRCC = 0.99
FORMATS = ("qdq", "qoperator")
# The stem and the first block stay FP32: they run at half the input's resolution (256² at
# 512 px) and their 8-bit noise reaches the standard-deviation pooling of the stride-4 level
# (AGIQA-3K split_1, Lite0 224+512, INT8 vs FP32 SRCC on 128 held-out images: 0.915 with every
# convolution quantized, 0.990 with only the stem kept, 0.997 with the stem and block 0 kept).
FP32_BLOCKS = 1
# Besides the convolutions, the ReLU6 clips and residual adds run in INT8: each tensor then stays
# 8-bit from one convolution to the next instead of being dequantized and quantized again
# around every activation (1.3–1.6× faster than quantizing the convolutions alone, same parity).
# Multiplications stay FP32: the head's standard-deviation pooling is made of them.
QUANTIZED_OPS = ["Conv", "Clip", "Relu", "Add"]


@dataclass(frozen=True)
class Parity:
    """INT8 against FP32 on ``images`` held-out training images (scores on the model's scale)."""

    images: int
    calibration_images: int
    srcc: float
    mean_abs_diff: float
    max_abs_diff: float
    fp32_score_std: float
    accepted: bool
    quant_format: str
    model_sha: str
    created: str
    # what was quantized (absent in records written before they were recorded)
    fp32_blocks: int | None = None
    quantized_ops: str = ""

    def summary(self) -> str:
        verdict = "accepted" if self.accepted else f"REJECTED (SRCC < {MIN_SRCC})"
        return (f"INT8 vs FP32 on {self.images} held-out images: SRCC {self.srcc:.4f}, mean |Δ| "
                f"{self.mean_abs_diff:.4f}, max |Δ| {self.max_abs_diff:.4f} (FP32 score std "
                f"{self.fp32_score_std:.4f}); calibrated on {self.calibration_images} — {verdict}")


def int8_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".int8.onnx")


def model_digest(model_path: str | Path) -> str:
    """The first 16 hex digits of the model file's SHA-256 (what a parity record keeps)."""
    return model_sha256(model_path)[:16]


def read_parity(onnx_path: str | Path) -> Parity | None:
    """The parity record of an INT8 graph (None when it has none, or the file is truncated,
    damaged or not ONNX: such a graph is never used)."""
    metadata = graph_metadata(onnx_path)
    if metadata is None or METADATA_KEY not in metadata:
        return None
    try:
        return Parity(**json.loads(metadata[METADATA_KEY]))
    except (ValueError, TypeError):
        return None


def fp32_nodes(onnx_path: Path, blocks: int = FP32_BLOCKS) -> list[str]:
    """Nodes left in FP32: the stem's and the first ``blocks`` blocks' convolutions, and every
    activation or add outside the later blocks (the input normalisation, the stem, the head)."""
    import onnx

    keep = []
    for node in onnx.load(str(onnx_path)).graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        match = re.search(r"_blocks\.(\d+)/", node.name)
        late_block = match is not None and int(match.group(1)) >= blocks
        if node.op_type == "Conv":
            if "_conv_stem" in node.name or (match and not late_block):
                keep.append(node.name)
        elif not late_block:
            keep.append(node.name)
    return keep


def _feeds(paths: Sequence[Path], sizes: Sequence[int], batch_size: int) -> Iterator[dict]:
    names = pixel_input_names(sizes)
    for batch in iter_pixel_batches(paths, sizes, batch_size):
        if batch.indices:
            yield dict(zip(names, batch.pixels, strict=True))


def _scores(session, paths: Sequence[Path], sizes: Sequence[int]) -> np.ndarray:  # noqa: ANN001
    return np.concatenate([session.run(None, feed)[0].reshape(-1)
                           for feed in _feeds(paths, sizes, 16)])


def quantize_int8(model_path: str | Path, images: Sequence[Path], out: str | Path | None = None,
                  calibration: int = 64, parity: int = 128, seed: int = 0,
                  quant_format: str = "qdq", threads: int | None = None) -> tuple[Path, Parity]:
    """Quantize ``model_path``'s convolutions, activations and residual adds after the stem and
    the first ``FP32_BLOCKS`` blocks (weights per channel, activations calibrated by min/max on
    ``calibration`` images drawn from ``images``; pooling and head stay FP32) and check it
    against FP32 on ``parity`` other images drawn from ``images``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from scipy.stats import spearmanr

    from leafiqa.student.onnx_runtime import onnx_session

    if quant_format not in FORMATS:
        raise ConfigError(f"unknown quantization format '{quant_format}' ({', '.join(FORMATS)})")
    model_path = Path(model_path)
    sizes = read_info(model_path).input_sizes
    sample = list(images)
    random.Random(seed).shuffle(sample)
    calibration_paths = sample[:calibration]
    parity_paths = sample[calibration : calibration + parity] or calibration_paths
    if len(calibration_paths) < 8:
        raise DataError(f"INT8 calibration needs at least 8 images, got {len(calibration_paths)}")
    out = Path(out) if out else int8_path(model_path)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = _feeds(calibration_paths, sizes, 8)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_pixel_onnx(model_path, Path(tmp) / "fp32.onnx")
        prepared = Path(tmp) / "prepared.onnx"
        quantized_path = Path(tmp) / "int8.onnx"  # renamed onto ``out`` once stamped
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantized_path), Reader(),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=fp32_nodes(prepared),
        )
        reference = _scores(onnx_session(fp32, threads), parity_paths, sizes)
        quantized = _scores(onnx_session(quantized_path, threads), parity_paths, sizes)
        srcc = float(spearmanr(reference, quantized)[0]) if len(reference) > 2 else float("nan")
        diff = np.abs(reference - quantized)
        sha = model_sha256(model_path)
        record = Parity(images=len(parity_paths), calibration_images=len(calibration_paths),
                        srcc=srcc, mean_abs_diff=float(diff.mean()),
                        max_abs_diff=float(diff.max()), fp32_score_std=float(reference.std()),
                        accepted=bool(srcc >= MIN_SRCC), quant_format=quant_format,
                        model_sha=sha[:16],
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        fp32_blocks=FP32_BLOCKS, quantized_ops=",".join(QUANTIZED_OPS))
        stamp_graph(quantized_path, sha, {METADATA_KEY: json.dumps(asdict(record))})
        with atomic_output(out) as temporary:
            temporary.write_bytes(quantized_path.read_bytes())
    return out, record
