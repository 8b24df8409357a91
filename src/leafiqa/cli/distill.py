"""``leaf distill``: a student distilled from stored judgments (``api.distill_from_store``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import parse_sizes
from leafiqa.cli.options import (
    CacheOption,
    DataOption,
    Kind,
    KindOption,
    LimitOption,
    SplitOption,
    StoreOption,
    TeacherIdOption,
)
from leafiqa.defaults import DEFAULT_BACKBONE, DEFAULT_SPLIT, DEFAULT_STORE


def distill(
    data: DataOption,
    store: StoreOption = DEFAULT_STORE,
    teacher_id: TeacherIdOption = None,
    out: Annotated[Path, typer.Option(help="model file to write")] = Path(
        "runs/student.safetensors"),
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    limit: LimitOption = None,
    backbone: Annotated[str, typer.Option(
        help="the student's image backbone")] = DEFAULT_BACKBONE,
    input_size: Annotated[str, typer.Option(
        help="input size, or the sizes of an image pyramid (e.g. 224,512)")] = "224,512",
    point_weight: Annotated[float, typer.Option(
        help="weight of the point-wise (score) loss")] = 1.0,
    pair_weight: Annotated[float, typer.Option(
        help="weight of the pair-wise (ranking) loss")] = 1.0,
    no_reliability: Annotated[bool, typer.Option(
        "--no-reliability", help="weight every judgment equally")] = False,
    cache: CacheOption = None,
) -> None:
    """Distil stored teacher judgments into a student (an uncalibrated model file) that learns
    from the data set's training images."""
    from leafiqa.api import distill_from_store
    from leafiqa.data.inputs import read_data
    from leafiqa.model.modelinfo import read_info
    from leafiqa.student.head import DistillFit

    manifest = read_data(data, kind.value, split, limit)
    path = distill_from_store(manifest, store, out, teacher_id=teacher_id, backbone=backbone,
                              input_size=parse_sizes(input_size), cache_dir=cache,
                              point_weight=point_weight, pair_weight=pair_weight,
                              use_reliability=not no_reliability)
    typer.echo(f"wrote {path}")
    fit = read_info(path).notes.get("distill")
    if fit:
        typer.echo(DistillFit(**fit).summary())
