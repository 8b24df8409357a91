"""``leaf export``: a calibrated model as one ONNX graph (``api.export_model``), and an INT8
graph checked against it (``api.quantize_model``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import fail
from leafiqa.cli.options import (
    ExportFormat,
    Kind,
    KindOption,
    MaybeDataOption,
    QuantFormat,
    Quantize,
    SplitOption,
)
from leafiqa.defaults import DEFAULT_SPLIT
from leafiqa.errors import ConfigError, DataError


def export(
    model_path: Annotated[Path, typer.Argument(help="a calibrated model file")],
    format: Annotated[ExportFormat, typer.Option(help="the file format")] = ExportFormat.onnx,  # noqa: A002
    out: Annotated[Path | None, typer.Option(
        help="the ONNX file (default: MODEL.onnx)")] = None,
    quantize: Annotated[Quantize | None, typer.Option(
        help="int8: also write MODEL.int8.onnx (ONNX Runtime static quantization; needs "
             "--data)")] = None,
    data: MaybeDataOption = None,
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    calibration: Annotated[int, typer.Option(help="images to calibrate INT8 on")] = 64,
    parity: Annotated[int, typer.Option(
        help="other images to check INT8 against FP32 on")] = 128,
    quant_format: Annotated[QuantFormat, typer.Option(
        help="qdq or qoperator")] = QuantFormat.qdq,
) -> None:
    """Export the calibrated student (calibration included) as one ONNX graph; with
    --quantize int8, an INT8 scoring graph calibrated on --data's training images, with its
    parity check against FP32."""
    from leafiqa.api import export_model, quantize_model
    from leafiqa.data.inputs import read_data

    if quantize is not None and not data:
        raise ConfigError("--quantize int8 needs --data: training images to calibrate on")
    typer.echo(f"wrote {export_model(model_path, out)}")
    if quantize is None or data is None:
        return
    try:
        path, record = quantize_model(model_path, read_data(data, kind.value, split),
                                      calibration=calibration, parity=parity,
                                      quant_format=quant_format.value)
    except (DataError, FileNotFoundError, ValueError) as error:
        fail(str(error))
    typer.echo(f"wrote {path}\n{record.summary()}")
