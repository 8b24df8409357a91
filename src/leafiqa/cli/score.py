"""``leaf score``: images scored with a model (``api.score_images``), written as they go."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from leafiqa.api import plural
from leafiqa.cli.options import (
    ActorsOption,
    Engine,
    EngineOption,
    ModelArgument,
    Precision,
    RayAddressOption,
    Runtime,
    RuntimeOption,
    StrictOption,
)
from leafiqa.errors import NothingSucceeded

OUT_HELP = ("output file: .csv (written as it goes; an existing one is resumed), .json or "
            ".parquet, one row per image (path, score, error); '-' writes the CSV to stdout. "
            "Default: path<TAB>score lines on stdout (the score alone for one image)")


def score(
    model_path: ModelArgument,
    inputs: Annotated[list[str], typer.Argument(
        help="images, folders, globs, .txt lists, CSVs or Parquet files of paths")],
    out: Annotated[str | None, typer.Option(help=OUT_HELP)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="replace an existing output file (a CSV is otherwise resumed)")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="no progress bar, no summary and no per-image warnings on "
                              "stderr")] = False,
    runtime: RuntimeOption = Runtime.auto,
    precision: Annotated[Precision, typer.Option(
        help="auto (INT8 when MODEL.int8.onnx passed its parity check), fp32 or int8"
    )] = Precision.auto,
    batch_size: Annotated[int, typer.Option(
        help="images per inference call (on CPU a larger batch is no faster and takes more "
             "memory)")] = 8,
    workers: Annotated[int | None, typer.Option(
        help="decoding threads (default: CPU count, ≤ 4)")] = None,
    threads: Annotated[int | None, typer.Option(help="inference threads")] = None,
    engine: EngineOption = Engine.local,
    ray_address: RayAddressOption = None,
    actors: ActorsOption = None,
    strict: StrictOption = False,
) -> None:
    """Score images with a model: one score per image on stdout, or a file written as it goes.
    Images that cannot be read keep their row (empty score, the reason in the error column),
    are reported once on stderr and counted by reason. Exit status: 0 when images were
    scored, 1 when every image failed, 2 for bad arguments or, with --strict, the first
    unreadable image. With --engine ray the images are scored on a Ray cluster into --out (a
    row per input with an error column; resumable)."""
    from leafiqa.api import ScoreRun, score_images

    if quiet:
        logging.getLogger("leafiqa").setLevel(logging.ERROR)
    result = score_images(model_path, inputs, out, force=force, runtime=runtime.value,
                          precision=precision.value, batch_size=batch_size, workers=workers,
                          threads=threads, engine=engine.value, ray_address=ray_address,
                          actors=actors, strict=strict,
                          progress=not quiet and sys.stderr.isatty())
    if not isinstance(result, ScoreRun):  # the Ray engine's report
        typer.echo(result.summary(), err=True)
        return
    if not quiet:
        typer.echo(result.summary(), err=True)
    if result.scored == 0 and not result.resumed:
        counts = f" ({result.reason_counts()})" if result.failures else ""
        raise NothingSucceeded(f"none of the inputs could be scored: {len(result.failures)} of "
                               f"{plural(result.inputs, 'image')} failed{counts}")
