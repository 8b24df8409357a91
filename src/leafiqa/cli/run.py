"""``leaf run``: every stage from one config (``experiments.pipeline.run_pipeline``)."""

from __future__ import annotations

import typer

from leafiqa.cli.base import parse_overrides
from leafiqa.cli.options import ConfigArgument, QuietOption, SetOption


def run(config: ConfigArgument,
        quiet: QuietOption = False,
        set_: SetOption = None) -> None:
    """Run every stage (teach → distill → calibrate → evaluate → model file) from one config."""
    from leafiqa.config import load_config
    from leafiqa.experiments.pipeline import format_results, run_pipeline

    summary = run_pipeline(load_config(config, parse_overrides(set_)), progress=not quiet)
    typer.echo(format_results(summary))
