"""``leaf features``: a config's features extracted ahead of a run (``api.extract_features``)."""

from __future__ import annotations

import typer

from leafiqa.cli.base import parse_overrides
from leafiqa.cli.options import (
    ActorsOption,
    ConfigArgument,
    Engine,
    EngineOption,
    QuietOption,
    RayAddressOption,
    SetOption,
)


def features(config: ConfigArgument,
             engine: EngineOption = Engine.local,
             ray_address: RayAddressOption = None,
             actors: ActorsOption = None,
             quiet: QuietOption = False,
             set_: SetOption = None) -> None:
    """Extract the frozen features of a config's images into its feature store (resumes where
    a run stopped); `leaf run` on the same config then finds them all."""
    from leafiqa.api import extract_features
    from leafiqa.config import load_config

    settings = load_config(config, parse_overrides(set_))
    report = extract_features(settings, engine=engine.value, ray_address=ray_address,
                              actors=actors, progress=not quiet)
    typer.echo(report.summary())
