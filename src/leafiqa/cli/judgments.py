"""``leaf judgments list|export|import``: a judgment store's teachers, and its judgments moved
between machines as JSONL (``judgments.store``, ``judgments.jsonl``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.cli.base import group, renamed
from leafiqa.cli.options import StoreOption
from leafiqa.defaults import DEFAULT_STORE
from leafiqa.errors import ConfigError

app = group("Inspect, export and import judgments.")


@app.command("list")
def list_teachers(store: StoreOption = DEFAULT_STORE) -> None:
    """Teachers in a store with their judgment counts."""
    from leafiqa.judgments.store import JudgmentStore

    with JudgmentStore(store, create=False) as opened:
        for teacher_id, version, points, pairs in opened.teachers():
            typer.echo(f"{teacher_id}\t{version}\tpoints={points}\tpairs={pairs}")
        failures = opened.failures()
        if failures:
            typer.echo(f"{len(failures)} failed judgments (retried on the next run)")


@app.command("export")
def export(out: Annotated[Path | None, typer.Option(
               help=".jsonl, .csv or .parquet (CSV and Parquet: one file per table)")] = None,
           old_out: Annotated[Path | None, typer.Argument(
               hidden=True, help="old place of --out")] = None,
           store: StoreOption = DEFAULT_STORE) -> None:
    """Export judgments (JSONL keeps everything; CSV/Parquet write one file per table)."""
    from leafiqa.judgments.jsonl import export_store
    from leafiqa.judgments.store import JudgmentStore

    if old_out is not None:
        if out is not None:
            raise ConfigError("give the output file once, as --out")
        renamed("`leaf judgments export FILE`", "`leaf judgments export --out FILE`")
        out = old_out
    if out is None:
        raise ConfigError("missing option '--out': the file to export to (.jsonl, .csv or "
                          ".parquet)")
    with JudgmentStore(store, create=False) as opened:
        written = export_store(opened, out)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@app.command("import")
def import_judgments(source: Annotated[Path, typer.Argument(help="a LEAF JSONL export")],
                     store: StoreOption = DEFAULT_STORE) -> None:
    """Import a JSONL export (judgments computed on another machine)."""
    from leafiqa.judgments.jsonl import import_jsonl
    from leafiqa.judgments.store import JudgmentStore

    with JudgmentStore(store) as opened:
        counts = import_jsonl(opened, source)
    typer.echo(f"imported {counts['point']} point-wise and {counts['pair']} pair-wise judgments")
