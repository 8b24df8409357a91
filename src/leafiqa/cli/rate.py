"""``leaf rate create|serve|status|add-raters|revoke`` and ``leaf ratings export``: collect
human ratings of a ``leaf select`` output and turn them into a ``name,mos,std,n`` label file."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import typer

from leafiqa.cli.base import LeafGroup, LeafTyper
from leafiqa.errors import DataError

rate_app = LeafTyper(cls=LeafGroup, no_args_is_help=True,
                     help="Collect human ratings of images (a study served as a web page per "
                          "rater).")
STUDY_HELP = "the study's folder (made by `leaf rate create`)"
ratings_app = LeafTyper(cls=LeafGroup, no_args_is_help=True,
                        help="Turn collected ratings into MOS labels.")


def read_gold(path: Path, scale: str, allowed_roots: list[Path] | None = None
              ) -> tuple[list[tuple[str, Path]], dict[str, float]]:
    """A CSV ``name,value`` (``mos`` or ``level`` also name the answer column) of hidden gold
    images with their known answer on the study's scale; names relative to the CSV."""
    from leafiqa.labelling.study import read_image_list

    images = read_image_list(path, allowed_roots=allowed_roots or ())
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        column = next((c for c in ("value", "mos", "level") if c in (reader.fieldnames or [])),
                      None)
        name_column = next(c for c in ("name", "path", "image") if c in (reader.fieldnames or []))
        if column is None:
            raise DataError(f"{path}: needs a 'value' column with each gold image's answer on "
                            f"the {scale} scale")
        answers: dict[str, float] = {}
        for row_number, row in enumerate(reader, start=2):
            try:
                answers[row[name_column].strip()] = float(row[column])
            except (TypeError, ValueError):
                raise DataError(f"{path}: row {row_number}, column '{column}': expected a "
                                f"number, got {row[column]!r}") from None
    return images, answers


def print_links(base_url: str, made: list) -> None:  # noqa: ANN001 - [(Rater, token)]
    for rater, token in made:
        typer.echo(f"{rater.label}: {base_url.rstrip('/')}/r/{token}")


@rate_app.command("create")
def create(
    study: Path = typer.Argument(..., help="a new folder for the study"),
    images: Path = typer.Option(..., help="a `leaf select` output (CSV/JSON with a name or "
                                          "path column) or a folder of images"),
    root: Path = typer.Option(None, help="folder the names are relative to (default: the "
                                         "list's folder); every image must be inside it"),
    allow_root: list[Path] = typer.Option(None, help="a folder outside the list's folder (or "
                                                     "--root) that images, or the links to "
                                                     "them, may lead into (repeatable)"),
    gold: Path = typer.Option(None, help="CSV name,value of hidden gold images with a known "
                                         "answer on the study's scale"),
    scale: str = typer.Option("acr", help="acr (Bad…Excellent, 1–5) or slider (0–100)"),
    raters: int = typer.Option(2, help="rater links to make now, 1 to 1000 (more: add-raters)"),
    repeats: int = typer.Option(2, help="images each rater sees a second time (0: none; at "
                                        "most every image once more)"),
    title: str = typer.Option("Image quality study", help="the study's title, shown to raters"),
    instructions: str = typer.Option(None, help="text shown before the first image"),
    seed: int = typer.Option(0, help="seed of the raters' random orders"),
    base_url: str = typer.Option("http://127.0.0.1:8001", help="address raters will open"),
) -> None:
    """Make a study: the images, its settings, one link per rater and an admin key (shown
    once; only their hashes are stored). Every image is checked: a regular file inside the
    list's folder (or --root, or an --allow-root), decoded as an image; files with the same
    content become one image."""
    from leafiqa.labelling.rounds import drop_chosen_gold
    from leafiqa.labelling.study import (
        MAX_RATERS_AT_ONCE,
        Study,
        StudySettings,
        read_image_list,
    )

    if not 1 <= raters <= MAX_RATERS_AT_ONCE:
        raise DataError(f"--raters: expected 1 to {MAX_RATERS_AT_ONCE} links, got {raters}")
    if repeats < 0:
        raise DataError(f"--repeats: expected 0 or more, got {repeats}")
    listed = read_image_list(images, root, allow_root or ())
    gold_images, answers = read_gold(gold, scale, allow_root) if gold else ([], {})
    settings = StudySettings(title=title, scale=scale, repeats=repeats, seed=seed, gold=answers)
    gold_set = drop_chosen_gold(listed, gold_images, answers, gold)
    if gold_set.dropped:
        gold_images, settings = gold_set.images, dataclasses.replace(settings,
                                                                     gold=gold_set.answers)
        typer.echo(f"note: {', '.join(gold_set.dropped)} chosen as study image(s): no longer "
                   f"gold in this study ({len(gold_images)} gold remain)")
    if instructions:
        settings = dataclasses.replace(settings, instructions=instructions)
    created = Study.create(study, listed, settings, gold_images)
    key = created.set_admin_key()
    made = created.add_raters(raters)
    stored = created.images()
    count = sum(image.gold is None for image in stored)
    planned = created.settings.repeats
    capped = f" (--repeats {repeats}: {len(stored)} images can each be shown once more)" \
        if planned != repeats else ""
    typer.echo(f"study {study}: {count} images, {len(stored) - count} gold, scale {scale}, "
               f"{planned} repeats per rater{capped}")
    for names in created.merged():
        typer.echo(f"note: {len(names)} files have the same content and are one image, "
                   f"'{names[0]}': " + ", ".join(f"'{name}'" for name in names[1:])
                   + " merged into it", err=True)
    print_links(base_url, made)
    typer.echo(f"admin: {base_url.rstrip('/')}/admin  key: {key}")
    port = urlsplit(base_url).port
    serve_hint = f"leaf rate serve {study}" + (f" --port {port}" if port else "")
    typer.echo(f"(links and key are shown only now; serve with `{serve_hint}`)")


@rate_app.command("add-raters")
def add_raters(study: Path = typer.Argument(..., help=STUDY_HELP),
               count: int = typer.Option(1, "--count", help="rater links to add (1 to 1000)"),
               base_url: str = typer.Option("http://127.0.0.1:8001",
                                            help="address raters will open")) -> None:
    """More rater links for a study."""
    from leafiqa.labelling.study import Study

    print_links(base_url, Study(study).add_raters(count))


@rate_app.command("revoke")
def revoke(study: Path = typer.Argument(..., help=STUDY_HELP),
           rater: str = typer.Argument(..., help="the rater's label (rater2) or id")) -> None:
    """Stop a rater's link from working (their ratings so far stay in the study)."""
    from leafiqa.labelling.study import Study

    typer.echo(f"revoked {Study(study).revoke(rater).label}")


@rate_app.command("serve")
def serve(study: Path = typer.Argument(..., help=STUDY_HELP),
          host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8001, help="port to listen on"),
          rate_limit: float = typer.Option(10.0, help="requests a second per rater link (and "
                                                      "per admin key)"),
          burst: int = typer.Option(40, help="requests a link may send at once"),
          address_limit: float = typer.Option(100.0, help="requests a second per client "
                                                          "address (raters behind one NAT "
                                                          "share it)"),
          address_burst: int = typer.Option(200, help="requests an address may send at "
                                                       "once")) -> None:
    """Serve the rating pages (/r/<token>) and the admin page (/admin)."""
    import uvicorn

    from leafiqa.labelling.service import create_rating_app
    from leafiqa.serve.http_limits import server_config

    app = create_rating_app(study, rate=rate_limit, burst=burst, address_rate=address_limit,
                            address_burst=address_burst)
    uvicorn.Server(server_config(app, host, port)).run()


@rate_app.command("status")
def status(study: Path = typer.Argument(..., help=STUDY_HELP)) -> None:
    """Progress and consistency checks per rater."""
    from leafiqa.labelling.screening import check_raters, votes_from_study
    from leafiqa.labelling.study import Study

    opened = Study(study)
    checks = {c.rater: c for c in check_raters(votes_from_study(opened), opened.settings)}
    for rater in opened.raters():
        check = checks.get(rater.label)
        flags = "; ".join(check.reasons) if check and check.reasons else "ok"
        typer.echo(f"{rater.label}: {rater.done}/{rater.total}"
                   f"{' (revoked)' if rater.revoked else ''}  {flags}")


@ratings_app.command("export")
def export(study: Path = typer.Argument(..., help=STUDY_HELP),
           out: Path = typer.Option(..., help="labels CSV: name,mos,std,n,round; an "
                                              "existing one keeps its other rounds' rows"),
           method: str = typer.Option("bt500", help="bt500 (checks + ITU-R BT.500 screening), "
                                                    "mle (checks + ITU-T P.913 subject model) "
                                                    "or mean (no screening)")) -> None:
    """Screen the raters and write each image's MOS for `leaf calibrate --labels`, merged
    into the label file already at --out: each study is a round (its rows replaced, the other
    rounds' kept; the round column names the study). Never into the study's folder or over one
    of its images; a failure leaves the label file as it was."""
    from leafiqa.data.readers import scale_declaration
    from leafiqa.labelling.rounds import fresh_labels, merge_round
    from leafiqa.labelling.screening import (
        check_labels_target,
        describe_checks,
        estimate,
        formula_safe,
        label_name,
        votes_from_study,
        write_labels,
    )
    from leafiqa.labelling.study import Study

    opened = Study(study)
    check_labels_target(opened, out)
    result = estimate(votes_from_study(opened), opened.settings, method=method)
    for line in describe_checks(result.checks):
        typer.echo(line)
    with fresh_labels(out) as fresh:
        rows = write_labels(opened, fresh, result)
        try:
            merged = merge_round(fresh, out, opened.folder.resolve().name)
            scale_declaration(fresh).replace(scale_declaration(out))
        finally:
            scale_declaration(fresh).unlink(missing_ok=True)
    typer.echo(f"wrote {out}: {rows} images {merged.summary()}")
    if merged.replaced:
        typer.echo(f"note: {len(merged.replaced)} image(s) labelled in an earlier round take "
                   f"this round's labels: {', '.join(merged.replaced[:5])}")
    paths = {image.name: image.path for image in opened.images()}
    written = {name: label_name(name, paths[name], out.parent)
               for name, n in zip(result.names, result.n, strict=True) if n > 0}
    moved = [name for name, label in written.items() if label != name]
    if moved:
        typer.echo(f"note: {len(moved)} names are written as paths relative to {out.parent} "
                   "so `leaf calibrate --labels` finds the files; write the labels into the "
                   "data folder to keep the data set's names (what `leaf select --labels` "
                   "matches)")
    guarded = [label for label in written.values() if formula_safe(label) != label]
    if guarded:
        typer.echo(f"note: {len(guarded)} names start with = + - @ (or a tab) and are written "
                   "as ./NAME, the same file, which no spreadsheet runs as a formula")
