"""``leaf``: the command line. One module per command group, each a thin layer over a function
of ``leafiqa.api`` (or of the feature package it names); the options they share are defined
once in ``cli.options``, the error line and the plain help in ``cli.base``. Only this package
imports ``leafiqa.cli``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from leafiqa.cli import (
    bench,
    calibrate,
    config,
    data,
    distill,
    evaluate,
    export,
    features,
    judgments,
    models,
    rate,
    ratings,
    run,
    score,
    select,
    serve,
    teach,
)
from leafiqa.cli.base import LeafGroup, LeafTyper, setup_logging, show_version

app = LeafTyper(cls=LeafGroup, add_completion=False, no_args_is_help=True,
                help="LEAF — label-efficient image quality assessment.")


@app.callback()
def main_options(version: Annotated[bool, typer.Option(
        "--version", callback=show_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """LEAF — label-efficient image quality assessment."""
    setup_logging()


# the pipeline, then the labelling loop, then the model and the tools, in `leaf --help`'s order
app.command("run")(run.run)
app.command("teach")(teach.teach)
app.command("features")(features.features)
app.command("distill")(distill.distill)
app.command("calibrate")(calibrate.calibrate)
app.command("evaluate")(evaluate.evaluate)
app.command("score")(score.score)
app.command("data", help=data.COMMAND_HELP)(data.data)
app.command("select")(select.select)
app.add_typer(rate.app, name="rate")
app.add_typer(ratings.app, name="ratings")
app.command("models")(models.models)
app.command("info")(models.info)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.command("bench")(bench.bench)
app.command("config")(config.config)
app.add_typer(judgments.app, name="judgments")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
