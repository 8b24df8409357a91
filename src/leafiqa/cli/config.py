"""``leaf config``: a run config checked and printed, or its JSON schema (``leafiqa.config``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import fail, parse_overrides
from leafiqa.cli.options import SetOption


def config(path: Annotated[Path | None, typer.Argument(
               help="a run config to check and print")] = None,
           schema: Annotated[bool, typer.Option(
               "--schema", help="print the config's JSON schema")] = False,
           set_: SetOption = None) -> None:
    """Check a run config (printed with every default filled in), or print its JSON schema."""
    from leafiqa.config import config_to_dict, load_config, schema_text

    if schema:
        typer.echo(schema_text())
    elif path is None:
        fail("give a config file, or --schema")
    else:
        typer.echo(json.dumps(config_to_dict(load_config(path, parse_overrides(set_))),
                              indent=2))
