"""``leaf ratings export``: a study's ratings as MOS labels merged into a label file round by
round (``api.export_ratings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import group
from leafiqa.cli.options import Screening, StudyArgument

app = group("Turn collected ratings into MOS labels.")


@app.command("export")
def export(study: StudyArgument,
           out: Annotated[Path, typer.Option(
               help="labels CSV: name,mos,std,n,round; an existing one keeps its other rounds' "
                    "rows")],
           method: Annotated[Screening, typer.Option(
               help="bt500 (checks + ITU-R BT.500 screening), mle (checks + ITU-T P.913 "
                    "subject model) or mean (no screening)")] = Screening.bt500) -> None:
    """Screen the raters and write each image's MOS for `leaf calibrate --labels`, merged
    into the label file already at --out: each study is a round (its rows replaced, the other
    rounds' kept; the round column names the study). Never into the study's folder or over one
    of its images; a failure leaves the label file as it was."""
    from leafiqa.api import export_ratings
    from leafiqa.labelling.screening import describe_checks

    exported = export_ratings(study, out, method.value)
    for line in describe_checks(exported.checks):
        typer.echo(line)
    typer.echo(f"wrote {out}: {exported.rows} images {exported.merged.summary()}")
    replaced = exported.merged.replaced
    if replaced:
        typer.echo(f"note: {len(replaced)} image(s) labelled in an earlier round take this "
                   f"round's labels: {', '.join(replaced[:5])}")
    if exported.relative:
        typer.echo(f"note: {len(exported.relative)} names are written as paths relative to "
                   f"{out.parent} so `leaf calibrate --labels` finds the files; write the "
                   "labels into the data folder to keep the data set's names (what `leaf "
                   "select --labels` matches)")
    if exported.guarded:
        typer.echo(f"note: {len(exported.guarded)} names start with = + - @ (or a tab) and are "
                   "written as ./NAME, the same file, which no spreadsheet runs as a formula")
