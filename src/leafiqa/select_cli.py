"""``leaf select``: the images people should rate next (registered by ``leafiqa.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

from leafiqa.data.selection import STRATEGIES
from leafiqa.defaults import DEFAULT_CACHE


def select(
    data: str = typer.Argument(..., help="dataset folder, manifest CSV or image folder "
                                         "(with or without MOS)"),
    n: int = typer.Option(..., "--n", help="how many images to rate next"),
    out: Path = typer.Option(Path("next.csv"), help="where to write them: .csv or .json"),
    strategy: str = typer.Option("variance", help=f"one of {', '.join(STRATEGIES)}"),
    labels: Path = typer.Option(None, help="CSV (name column) of the images already rated: "
                                           "the next round is chosen given those"),
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
    cache: Path = typer.Option(Path(DEFAULT_CACHE), help="feature cache folder"),
) -> None:
    """Write the N images to rate next, in the order to ask (--labels: given those rated)."""
    from leafiqa.cli import read_data
    from leafiqa.labelling import select_next

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection '{strategy}'; choose from {', '.join(STRATEGIES)}")
    if labels is not None and not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    options: dict = {}
    if model is not None:
        from leafiqa.deploy.modelfile import read_info

        info = read_info(model)
        options = {"backbone": info.backbone, "input_size": info.input_sizes}
    manifest = read_data(data, kind, split)
    chosen = select_next(manifest, n, strategy=strategy, labels=labels, store=store,
                         teacher_id=teacher_id, cache_dir=cache, seed=seed, **options)
    path = chosen.write(out)
    typer.echo(f"wrote {path}: {len(chosen.names)} images to rate next ({strategy}; "
               f"{chosen.already_rated} already rated of {chosen.pool})")
