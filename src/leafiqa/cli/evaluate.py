"""``leaf evaluate``: a model file against MOS (``api.evaluate_model``), and how many of the
evaluated images trained it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from leafiqa.api import plural
from leafiqa.cli.base import note, renamed
from leafiqa.cli.options import (
    DataOption,
    ForceOption,
    ImageRootOption,
    Kind,
    KindOption,
    ModelFileArgument,
    QuietOption,
    Runtime,
    RuntimeOption,
    SplitOption,
    StrictOption,
)
from leafiqa.defaults import DEFAULT_SPLIT
from leafiqa.errors import ConfigError


def evaluate(
    model_path: ModelFileArgument,
    data: DataOption,
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    subset: Annotated[str, typer.Option(
        help="split value to evaluate on ('' for all)")] = "test",
    out: Annotated[Path | None, typer.Option(
        help="also write the metrics (JSON) to this file")] = None,
    old_json: Annotated[Path | None, typer.Option(
        "--json", hidden=True, help="old name of --out")] = None,
    force: ForceOption = False,
    runtime: RuntimeOption = Runtime.auto,
    strict: StrictOption = False,
    image_root: ImageRootOption = None,
    quiet: QuietOption = False,
) -> None:
    """SRCC / KRCC / PLCC / RMSE of a model file against MOS, printed as JSON, and how many of
    the evaluated images trained the model (from the record in the model file; "unknown"
    without one)."""
    from leafiqa.api import evaluate_model
    from leafiqa.data.inputs import read_data
    from leafiqa.model.outputs import check_not_an_input, check_writable_target

    if old_json is not None:
        if out is not None:
            raise ConfigError("give the metrics file once, as --out")
        renamed("`leaf evaluate --json FILE`", "`leaf evaluate --out FILE`")
        out = old_json
    if out is not None:
        check_not_an_input(out, [model_path, Path(data)])
        check_writable_target(out, force)
    manifest = read_data(data, kind.value, split, image_root=image_root)
    result = evaluate_model(model_path, manifest, subset=subset, runtime=runtime.value,
                            strict=strict, progress=not quiet)
    report_training_overlap(model_path, result.images, result.seen, result.labelled)
    if result.warning:
        typer.secho(f"warning: {result.warning}", fg=typer.colors.YELLOW, err=True)
    text = json.dumps(result.metrics, indent=2)
    typer.echo(text)
    if out:
        out.write_text(text)


def report_training_overlap(model_path: Path, evaluated: int, seen: int | None,
                            labelled: int | None) -> None:
    """Say how many evaluated images trained the model, and how: with their labels (then the
    figures are no test of it) or only distilled on, the teacher's judgments (a student is
    distilled on the whole folder it scores: the figure on its own folder, not on new images)."""
    images = plural(evaluated, "image")
    log = logging.getLogger("leafiqa.evaluate")
    if seen is None:
        note(f"{model_path.name} does not record the images it trained on; how many of these "
             f"{images} it has seen is unknown")
    elif labelled:
        log.warning("%s of the %s evaluated trained this model with their labels: these "
                    "figures are not a test of it", labelled, images)
    elif seen and labelled is None:
        log.warning("%s of the %s evaluated trained this model: these figures are not a test "
                    "of it", seen, images)
    elif seen:
        note(f"{seen} of the {images} evaluated were distilled on (the teacher's judgments) and "
             "never labelled: the figures are the model on its own folder, not on new images")
