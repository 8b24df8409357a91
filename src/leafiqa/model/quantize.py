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
from leafiqa.errors import ConfigError, DataError
from leafiqa.model.file import read_info
from leafiqa.model.graphs import (  # noqa: F401 - kept importable from here
    MIN_SRCC,
    PARITY_KEY,
    Parity,
    atomic_output,
    int8_path,
    model_sha256,
    read_parity,
)
from leafiqa.model.onnx_export import export_pixel_onnx, pixel_input_names, stamp_graph

METADATA_KEY = PARITY_KEY
FORMATS = ("qdq", "qoperator")
# The stem and the first block stay FP32: they run at half the input's resolution (256² at
# 512 px) and their 8-bit noise reaches the standard-deviation pooling of the stride-4 level.
# Quantizing block 0 too gains little speed for a visible loss of parity with FP32, and the stem
# as well loses accuracy without any gain (benchmarks/graph_variants.py measures the variants;
# docs/results/speed.md).
FP32_BLOCKS = 1
# Besides the convolutions, the ReLU6 clips and residual adds run in INT8: each tensor then stays
# 8-bit from one convolution to the next instead of being dequantized and quantized again
# around every activation (faster than quantizing the convolutions alone, at the same parity:
# docs/results/speed.md). Multiplications stay FP32: the head's standard-deviation pooling is
# made of them.
QUANTIZED_OPS = ["Conv", "Clip", "Relu", "Add"]


@dataclass(frozen=True)
class Recipe:
    """What is quantized and how (benchmarks/graph_variants.py measures the alternatives; the
    default is what ``leaf export --quantize int8`` writes). ``fp32_blocks``: blocks after the
    stem kept FP32 (0: the stem alone, -1: not even the stem); ``activations``: uint8 (U8S8,
    what VNNI multiplies) or int8 (S8S8); ``per_channel``: one weight scale per output channel;
    ``calibration``: minmax or percentile (99.999 %, ONNX Runtime's default)."""

    quant_format: str = "qdq"
    fp32_blocks: int = FP32_BLOCKS
    ops: tuple[str, ...] = tuple(QUANTIZED_OPS)
    per_channel: bool = True
    activations: str = "uint8"
    calibration: str = "minmax"

    def describe(self) -> str:
        return (f"{self.quant_format}, {'per-channel' if self.per_channel else 'per-tensor'} "
                f"weights, {'U8S8' if self.activations == 'uint8' else 'S8S8'}, "
                f"{self.calibration}, FP32: {fp32_part(self.fp32_blocks)}, "
                f"ops {'/'.join(self.ops)}")


def fp32_part(blocks: int) -> str:
    return ("nothing" if blocks < 0 else "stem" if blocks == 0
            else "stem + block 0" if blocks == 1 else f"stem + blocks 0–{blocks - 1}")


def model_digest(model_path: str | Path) -> str:
    """The first 16 hex digits of the model file's SHA-256 (what a parity record keeps)."""
    return model_sha256(model_path)[:16]


def fp32_nodes(onnx_path: Path, blocks: int = FP32_BLOCKS,
               ops: Sequence[str] = QUANTIZED_OPS) -> list[str]:
    """Nodes left in FP32: the stem's (unless ``blocks`` < 0) and the first ``blocks`` blocks'
    convolutions, and every other quantizable node outside the later blocks (the input
    normalisation, the stem's activation unless it is quantized, the head)."""
    import onnx

    nodes = onnx.load(str(onnx_path)).graph.node
    stem_outputs = {out for node in nodes if "_conv_stem" in node.name for out in node.output}
    keep = []
    for node in nodes:
        if node.op_type not in ops:
            continue
        match = re.search(r"_blocks\.(\d+)/", node.name)
        late_block = match is not None and int(match.group(1)) >= blocks
        stem = "_conv_stem" in node.name or bool(stem_outputs & set(node.input))
        if blocks < 0 and stem:
            continue
        if node.op_type == "Conv":
            if stem or (match and not late_block):
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
                  quant_format: str = "qdq", threads: int | None = None,
                  recipe: Recipe | None = None) -> tuple[Path, Parity]:
    """Quantize ``model_path``'s convolutions, activations and residual adds after the stem and
    the first ``FP32_BLOCKS`` blocks (weights per channel, activations calibrated by min/max on
    ``calibration`` images drawn from ``images``; pooling and head stay FP32; ``recipe``
    changes any of that) and check it against FP32 on ``parity`` other images drawn from
    ``images``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from scipy.stats import spearmanr

    from leafiqa.student.onnx_runtime import onnx_session

    recipe = recipe or Recipe(quant_format=quant_format)
    quant_format = recipe.quant_format
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
            activation_type=(QuantType.QUInt8 if recipe.activations == "uint8"
                             else QuantType.QInt8),
            weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
            op_types_to_quantize=list(recipe.ops),
            nodes_to_exclude=fp32_nodes(prepared, recipe.fp32_blocks, recipe.ops),
            calibrate_method=(CalibrationMethod.MinMax if recipe.calibration == "minmax"
                              else CalibrationMethod.Percentile),
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
                        fp32_blocks=recipe.fp32_blocks, quantized_ops=",".join(recipe.ops))
        stamp_graph(quantized_path, sha, {METADATA_KEY: json.dumps(asdict(record))})
        with atomic_output(out) as temporary:
            temporary.write_bytes(quantized_path.read_bytes())
    return out, record
