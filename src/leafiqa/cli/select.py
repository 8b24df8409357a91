"""``leaf select``: the images people should rate next (``api.select_images``), and with the
labels so far and a model, what the next ones are expected to add (``api.label_outlook``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import given_once, renamed
from leafiqa.cli.options import (
    CacheOption,
    Kind,
    KindOption,
    MaybeDataOption,
    Selection,
    SelectionOption,
    StoreOption,
    TeacherIdOption,
)
from leafiqa.defaults import DEFAULT_SPLIT, DEFAULT_STORE


def select(
    n: Annotated[int, typer.Option("--n", help="how many images to rate next")],
    data: MaybeDataOption = None,
    old_data: Annotated[str | None, typer.Argument(
        hidden=True, help="old place of --data")] = None,
    out: Annotated[Path, typer.Option(
        help="where to write them: .csv or .json")] = Path("next.csv"),
    selection: SelectionOption = Selection.variance,
    labels: Annotated[Path | None, typer.Option(
        help="CSV (name column) of the images already rated, such as the label file `leaf "
             "ratings export` merges rounds into: the next round is chosen given those")] = None,
    exclude: Annotated[list[Path] | None, typer.Option(
        help="images never to choose: a list of names (one a line), a CSV with a name column "
             "(a gold file), or a CSV with a split column (its test rows); repeatable")] = None,
    strategy: Annotated[Selection | None, typer.Option(
        hidden=True, help="old name of --selection")] = None,
    store: StoreOption = DEFAULT_STORE,
    teacher_id: TeacherIdOption = None,
    model: Annotated[Path | None, typer.Option(
        help="a LEAF model file: its backbone and input sizes give the features (default: "
             "Lite0 at 224+512)")] = None,
    kind: KindOption = Kind.auto,
    split: Annotated[str, typer.Option(
        help="split column of AGIQA-3K and clive-dev; only its training images are chosen"
    )] = DEFAULT_SPLIT,
    seed: Annotated[int, typer.Option(
        help="seed of random choices (random selection, ties)")] = 0,
    cache: CacheOption = None,
) -> None:
    """Write the N images to rate next, in the order to ask (--labels: given those rated;
    --exclude: never these)."""
    from leafiqa.api import label_outlook, select_images
    from leafiqa.calibration.estimate import LearningCurve
    from leafiqa.data.inputs import read_data
    from leafiqa.data.splits import training_images
    from leafiqa.experiments.pipeline import format_expected

    if strategy is not None:  # the option's old name, still read
        renamed("--strategy", "--selection (as in `leaf calibrate`)")
        selection = strategy
    manifest = read_data(given_once(data, old_data, "select"), kind.value, split)
    chosen = select_images(manifest, n, selection=selection.value, labels=labels,
                           exclude=exclude or (), store=store, teacher_id=teacher_id,
                           model=model, cache_dir=cache, seed=seed)
    path = chosen.write(out)
    left_out = len(training_images(manifest)) - chosen.pool
    typer.echo(f"wrote {path}: {len(chosen.names)} images to rate next ({selection}; "
               f"{chosen.already_rated} already rated of {chosen.pool}"
               + (f"; {left_out} excluded" if left_out else "") + ")")
    if labels is None or model is None:
        return
    outlook = label_outlook(model, manifest, labels, n, selection=selection.value, store=store,
                            teacher_id=teacher_id, kind=kind.value, split=split,
                            cache_dir=cache)
    if outlook is not None and outlook.expected is not None:
        typer.echo("so far: " + format_expected(outlook.expected.to_dict()))
    if outlook is not None and isinstance(outlook.curve, LearningCurve):
        typer.echo("worth more labels? " + outlook.curve.summary())
