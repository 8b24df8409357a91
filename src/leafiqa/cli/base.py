"""What every ``leaf`` command shares: one ``error:`` line for a user's mistake, and help with
no type tags and one-sentence command summaries (``cli`` and ``cli_rate`` build on it)."""

from __future__ import annotations

import re
from typing import Any, cast

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from leafiqa.errors import LeafError

# What a user can get wrong (a path, a file, a value): one `error:` line and exit code 2. LEAF
# raises its own errors (LeafError) for bad values; anything else — a ValueError included — is
# a bug and keeps its traceback.
USER_ERRORS = (LeafError, FileNotFoundError, PermissionError, IsADirectoryError,
               NotADirectoryError)


def one_line(error: BaseException) -> str:
    from leafiqa.redact import redact

    text = " ".join(str(error).split()) or type(error).__name__
    return redact(text if len(text) <= 600 else text[:600] + " …")


# Only Typer's public names: typer.core's classes (documented for `cls=`) and the
# `display_type_rich` hook they call since Typer 0.29 (pyproject's floor). Click's classes are
# Typer's private copy since 0.26 (typer._click), so a parameter is typed Any here.
class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: object) -> str:
        return ""  # no `<bool>`/`<str>` tags: the help text says what a value is


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: object) -> str:
        return ""


def _plain(param: Any) -> Any:
    """Typer's option classes cannot be chosen per app, so each parameter is switched to the
    subclass that shows no type tag (same fields, one method overridden)."""
    if type(param) is TyperOption:
        param.__class__ = _PlainOption
    elif type(param) is TyperArgument:
        param.__class__ = _PlainArgument
    return param


def first_sentence(text: str) -> str:
    """The one-line summary `leaf --help` lists a command with."""
    flat = " ".join(text.split("\n\n")[0].split())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)[0]


class _PlainHelp:
    """Help without type tags, and a command list of one-sentence summaries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        command = cast(TyperCommand, self)
        if command.help and not command.short_help:
            command.short_help = first_sentence(command.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return [_plain(param) for param in super().get_params(ctx)]  # type: ignore[misc]


class LeafCommand(_PlainHelp, TyperCommand):
    pass


class LeafGroup(_PlainHelp, TyperGroup):
    """Catches user errors of every command in one place."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            typer.secho(f"error: {one_line(error)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


class LeafTyper(typer.Typer):
    """Every command of the app gets the plain help of ``LeafCommand``."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None,  # type: ignore[override]
                **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or LeafCommand, **kwargs)
