"""``leaf bench``: the label-budget study of a config (``experiments.bench.run_bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import parse_overrides
from leafiqa.cli.options import ConfigArgument, SetOption


def bench(config: ConfigArgument,
          quick: Annotated[bool, typer.Option("--quick", help="a small grid (CI)")] = False,
          out: Annotated[Path | None, typer.Option(
              help="report folder (default: <output>/bench)")] = None,
          set_: SetOption = None) -> None:
    """Label-budget study: methods × budgets × splits × seeds, with plots and an HTML report."""
    from leafiqa.config import load_config
    from leafiqa.experiments.bench import run_bench

    overrides = parse_overrides(set_)
    report = run_bench(load_config(config, overrides), quick=quick, out=out, overrides=overrides)
    typer.echo(report.markdown)
    typer.echo(f"\nreport: {report.html}   csv: {report.csv}   time: {report.seconds:.0f} s")
