"""``leaf data``: a data set checked and shown as a run will split it, optionally written as
one CSV every command reads (``data.splits.load_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import fail, given_once
from leafiqa.cli.options import (
    ForceOption,
    ImageRootOption,
    Kind,
    KindOption,
    MaybeDataOption,
    SplitOption,
)
from leafiqa.defaults import DEFAULT_SPLIT
from leafiqa.errors import DataError

COMMAND_HELP = (
    "Check a dataset and show how a run will split it; --out writes it as one CSV (absolute "
    "paths, a split column) that every command reads.\n\n"
    "A CSV is name[,mos][,std][,split] (path or image also name the image column). Names are "
    "relative to --image-root, by default the CSV's folder; absolute paths are kept.\n\n"
    "Rows with an empty mos are the unlabeled pool: the teacher judges them and the student "
    "distils from them; only rows with a MOS can be calibration labels or test images.\n\n"
    "split is optional: train or test in any case (training/testing too); an empty cell trains. "
    "Without a split column every image trains, or --holdout 0.2 makes a seeded 20 % of the "
    "rows with MOS the test set.")


def data(
    data: MaybeDataOption = None,
    old_path: Annotated[str | None, typer.Argument(
        hidden=True, help="old place of --data")] = None,
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    image_root: ImageRootOption = None,
    holdout: Annotated[float | None, typer.Option(
        help="no split column: this fraction of the images with MOS becomes the test set"
    )] = None,
    seed: Annotated[int, typer.Option(help="seed of the holdout draw")] = 0,
    out: Annotated[Path | None, typer.Option(
        help="write the prepared manifest here (CSV, absolute paths)")] = None,
    force: ForceOption = False,
) -> None:
    from leafiqa.data.splits import load_data, write_manifest_csv
    from leafiqa.model.outputs import check_not_an_input, check_writable_target

    path = given_once(data, old_path, "data")
    if out is not None:
        check_not_an_input(out, [Path(path)] + ([Path(image_root)] if image_root else []))
        check_writable_target(out, force)
    try:
        manifest = load_data(kind.value, path, split=split, image_root=image_root,
                             holdout=holdout, holdout_seed=seed)
    except (DataError, FileNotFoundError, ValueError) as error:  # pandas' parse errors too
        fail(str(error))
    counts = {name: [i for i in manifest if i.split == name] for name in ("train", "test")}
    labelled = sum(item.mos is not None for item in manifest)
    typer.echo(f"{manifest.source}: {len(manifest)} images, {labelled} with MOS, "
               f"{len(manifest) - labelled} unlabeled")
    for name, items in counts.items():
        typer.echo(f"  {name}: {len(items)} images ({sum(i.mos is not None for i in items)} "
                   "with MOS)")
    if not counts["test"]:
        typer.echo("  no test images: a run trains on everything and cannot evaluate "
                   "(use --holdout)")
    if out:
        typer.echo(f"wrote {write_manifest_csv(manifest, out)}")
