"""``leaf select``: the images people should rate next (registered by ``leafiqa.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from leafiqa.defaults import CACHE_HELP
from leafiqa.errors import ConfigError
from leafiqa.labelling.designs import STRATEGIES

if TYPE_CHECKING:
    from leafiqa.data.manifest import Manifest


def select(
    data: str = typer.Argument(..., help="dataset folder, manifest CSV or image folder "
                                         "(with or without MOS)"),
    n: int = typer.Option(..., "--n", help="how many images to rate next"),
    out: Path = typer.Option(Path("next.csv"), help="where to write them: .csv or .json"),
    selection: str = typer.Option("variance", help=f"the design: {', '.join(STRATEGIES)} "
                                                   "(`leaf calibrate --selection` takes it)"),
    labels: Path = typer.Option(None, help="CSV (name column) of the images already rated, "
                                           "such as the label file `leaf ratings export` "
                                           "merges rounds into: the next round is chosen "
                                           "given those"),
    exclude: list[Path] = typer.Option(None, help="images never to choose: a list of names "
                                                  "(one a line), a CSV with a name column "
                                                  "(a gold file), or a CSV with a split "
                                                  "column (its test rows); repeatable"),
    strategy: str = typer.Option(None, hidden=True, help="old name of --selection"),
    store: Path = typer.Option(Path("runs/judgments.sqlite"),
                               help="judgment store with the teacher's judgments"),
    teacher_id: str = typer.Option(None, help="teacher in the store (when it holds several)"),
    model: Path = typer.Option(None, help="a LEAF model file: its backbone and input sizes "
                                          "give the features (default: Lite0 at 224+512)"),
    kind: str = typer.Option("auto", help="dataset kind (agiqa3k, clive, koniq10k, spaq, livec, "
                                               "kadid10k, csv, folder)"),
    split: str = typer.Option("split_1", help="split column of AGIQA-3K and clive-dev; only "
                                                 "its training images are chosen"),
    seed: int = typer.Option(0, help="seed of random choices (random selection, ties)"),
    cache: Path = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Write the N images to rate next, in the order to ask (--labels: given those rated;
    --exclude: never these)."""
    from leafiqa.api import training_images
    from leafiqa.cli import read_data
    from leafiqa.labelling.select import select_next

    if strategy is not None:  # the option's old name, still read
        typer.echo("note: --strategy is now --selection (as in `leaf calibrate`)", err=True)
        selection = strategy
    if selection not in STRATEGIES:
        raise ConfigError(f"unknown selection '{selection}'; choose from {', '.join(STRATEGIES)}")
    if labels is not None and not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    options: dict = {}
    if model is not None:
        from leafiqa.model.file import read_info

        info = read_info(model)
        options = {"backbone": info.backbone, "input_size": info.input_sizes}
    manifest = read_data(data, kind, split)
    chosen = select_next(manifest, n, strategy=selection, labels=labels, exclude=exclude or (),
                         store=store, teacher_id=teacher_id, cache_dir=cache, seed=seed,
                         **options)
    path = chosen.write(out)
    left_out = len(training_images(manifest)) - chosen.pool
    typer.echo(f"wrote {path}: {len(chosen.names)} images to rate next ({selection}; "
               f"{chosen.already_rated} already rated of {chosen.pool}"
               + (f"; {left_out} excluded" if left_out else "") + ")")
    if labels is not None and model is not None:
        say_what_more_adds(model, manifest, labels, n, selection=selection, store=store,
                           teacher_id=teacher_id, kind=kind, split=split, cache=cache)


def say_what_more_adds(model: Path, manifest: Manifest, labels: Path, n: int, *, selection: str,
                       store: Path | None, teacher_id: str | None, kind: str, split: str,
                       cache: Path) -> None:
    """With the labels so far and the student: the accuracy they estimate for the pool and
    what the next ``n`` labels are expected to add (``api.calibrate``, nothing written)."""
    from leafiqa.api import calibrate
    from leafiqa.calibration.estimate import LearningCurve
    from leafiqa.cli import read_data
    from leafiqa.data.manifest import with_labels
    from leafiqa.experiments.pipeline import format_expected

    rated = read_data(str(labels), kind, split)
    if sum(item.mos is not None for item in rated) < 2:
        return
    outlook = calibrate(model, with_labels(manifest, rated), budget=1.0, selection=selection,
                        store=store, teacher_id=teacher_id, cache_dir=cache, target="pool",
                        next_labels=n)
    if outlook.expected is not None:
        typer.echo("so far: " + format_expected(outlook.expected.to_dict()))
    if isinstance(outlook.curve, LearningCurve):
        typer.echo("worth more labels? " + outlook.curve.summary())
