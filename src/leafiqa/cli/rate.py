"""``leaf rate create|add-raters|revoke|serve|status``: a rating study of a ``leaf select``
output, served as a page per rater (``api.create_study``, ``labelling.study``,
``labelling.service``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from leafiqa.cli.base import group, note
from leafiqa.cli.options import BaseUrlOption, RatingScale, StudyArgument

app = group("Collect human ratings of images (a study served as a web page per rater).")
BASE_URL = "http://127.0.0.1:8001"


def print_links(base_url: str, made: list) -> None:  # noqa: ANN001 - [(Rater, token)]
    for rater, token in made:
        typer.echo(f"{rater.label}: {base_url.rstrip('/')}/r/{token}")


@app.command("create")
def create(
    study: Annotated[Path, typer.Argument(help="a new folder for the study")],
    images: Annotated[Path, typer.Option(
        help="a `leaf select` output (CSV/JSON with a name or path column) or a folder of "
             "images")],
    root: Annotated[Path | None, typer.Option(
        help="folder the names are relative to (default: the list's folder); every image "
             "must be inside it")] = None,
    allow_root: Annotated[list[Path] | None, typer.Option(
        help="a folder outside the list's folder (or --root) that images, or the links to "
             "them, may lead into (repeatable)")] = None,
    gold: Annotated[Path | None, typer.Option(
        help="CSV name,value of hidden gold images with a known answer on the study's "
             "scale")] = None,
    scale: Annotated[RatingScale, typer.Option(
        help="acr (Bad…Excellent, 1–5) or slider (0–100)")] = RatingScale.acr,
    raters: Annotated[int, typer.Option(
        help="rater links to make now, 1 to 1000 (more: add-raters)")] = 2,
    repeats: Annotated[int, typer.Option(
        help="images each rater sees a second time (0: none; at most every image once "
             "more)")] = 2,
    title: Annotated[str, typer.Option(
        help="the study's title, shown to raters")] = "Image quality study",
    instructions: Annotated[str | None, typer.Option(
        help="text shown before the first image")] = None,
    seed: Annotated[int, typer.Option(help="seed of the raters' random orders")] = 0,
    base_url: BaseUrlOption = BASE_URL,
) -> None:
    """Make a study: the images, its settings, one link per rater and an admin key (shown
    once; only their hashes are stored). Every image is checked: a regular file inside the
    list's folder (or --root, or an --allow-root), decoded as an image; files with the same
    content become one image."""
    from leafiqa.api import create_study

    made = create_study(study, images, root=root, allow_roots=allow_root or (), gold=gold,
                        scale=scale.value, raters=raters, repeats=repeats, title=title,
                        instructions=instructions, seed=seed)
    if made.dropped_gold:
        typer.echo(f"note: {', '.join(made.dropped_gold)} chosen as study image(s): no longer "
                   f"gold in this study ({made.gold} gold remain)")
    stored = made.study.images()
    count = sum(image.gold is None for image in stored)
    planned = made.study.settings.repeats
    capped = (f" (--repeats {repeats}: {len(stored)} images can each be shown once more)"
              if planned != repeats else "")
    typer.echo(f"study {study}: {count} images, {len(stored) - count} gold, scale {scale}, "
               f"{planned} repeats per rater{capped}")
    for names in made.study.merged():
        note(f"{len(names)} files have the same content and are one image, '{names[0]}': "
             + ", ".join(f"'{name}'" for name in names[1:]) + " merged into it")
    print_links(base_url, made.links)
    typer.echo(f"admin: {base_url.rstrip('/')}/admin  key: {made.admin_key}")
    port = urlsplit(base_url).port
    serve_hint = f"leaf rate serve {study}" + (f" --port {port}" if port else "")
    typer.echo(f"(links and key are shown only now; serve with `{serve_hint}`)")


@app.command("add-raters")
def add_raters(study: StudyArgument,
               count: Annotated[int, typer.Option(
                   "--count", help="rater links to add (1 to 1000)")] = 1,
               base_url: BaseUrlOption = BASE_URL) -> None:
    """More rater links for a study."""
    from leafiqa.labelling.study import Study

    print_links(base_url, Study(study).add_raters(count))


@app.command("revoke")
def revoke(study: StudyArgument,
           rater: Annotated[str, typer.Argument(
               help="the rater's label (rater2) or id")]) -> None:
    """Stop a rater's link from working (their ratings so far stay in the study)."""
    from leafiqa.labelling.study import Study

    typer.echo(f"revoked {Study(study).revoke(rater).label}")


@app.command("serve")
def serve(study: StudyArgument,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8001,
          rate_limit: Annotated[float, typer.Option(
              help="requests a second per rater link (and per admin key)")] = 10.0,
          burst: Annotated[int, typer.Option(help="requests a link may send at once")] = 40,
          address_limit: Annotated[float, typer.Option(
              help="requests a second per client address (raters behind one NAT share "
                   "it)")] = 100.0,
          address_burst: Annotated[int, typer.Option(
              help="requests an address may send at once")] = 200) -> None:
    """Serve the rating pages (/r/<token>) and the admin page (/admin)."""
    import uvicorn

    from leafiqa.labelling.service import create_rating_app
    from leafiqa.serve.http_limits import server_config

    rating_app = create_rating_app(study, rate=rate_limit, burst=burst,
                                   address_rate=address_limit, address_burst=address_burst)
    uvicorn.Server(server_config(rating_app, host, port)).run()


@app.command("status")
def status(study: StudyArgument) -> None:
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
