"""The calibrated student as one ONNX graph (calibration included, dynamic batch axis)."""

from __future__ import annotations

from pathlib import Path

from leafiqa.deploy.modelfile import load_network
from leafiqa.student.features import export_onnx


def export_model_onnx(model_path: str | Path, output: str | Path | None = None) -> Path:
    network, info = load_network(model_path)
    output = Path(output) if output else Path(model_path).with_suffix(".onnx")
    export_onnx(network, info.input_sizes, output)
    return output
