"""``leaf models`` and ``leaf info``: the models by name (``model.registry.model_listing``) and
one model's card (``api.model_card``)."""

from __future__ import annotations

import json

import typer

from leafiqa.cli.base import fail
from leafiqa.cli.options import JsonFlag, ModelArgument


def models(as_json: JsonFlag = False) -> None:
    """The models create_metric and leaf score accept by name: the packaged ones and any in the
    folders of LEAF_MODEL_PATH."""
    from leafiqa.model.registry import model_listing

    listed = model_listing()
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        typer.echo("no models registered")
        return
    typer.echo(f"{'name':<16} {'for':<22} {'scale':<24} {'SRCC':>6}  file")
    for model in listed:
        if "error" in model:
            typer.echo(f"{model['name']:<16} unreadable: {model['error']}")
            continue
        scale = model["scale"]
        scale_text = f"{scale[0]:g}–{scale[1]:g} higher better" if scale else "uncalibrated"
        srcc = model["test"].get("srcc")
        typer.echo(f"{model['name']:<16} {model['title']:<22} {scale_text:<24} "
                   f"{'' if srcc is None else f'{srcc:.3f}':>6}  {model['path']}")


def info(model_path: ModelArgument) -> None:
    """A model's card and metadata as JSON: training data, teacher, labels, MOS scale, test
    metrics, licence, tool version, commit, labels file and seeds."""
    from leafiqa.api import model_card

    try:
        card = model_card(model_path)
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    typer.echo(json.dumps(card, indent=2))
