"""What every ``leaf`` command shares: one ``error:`` line for a user's mistake (exit 2; 1 when
every input failed), help with no type tags and one-sentence command summaries, the logging
every command prints through, and the parsing of values several commands take."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, NoReturn, cast

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from leafiqa.errors import ConfigError, LeafError
from leafiqa.redact import one_line

# What a user can get wrong (a path, a file, a value): one `error:` line and exit code 2 (1 for
# NothingSucceeded: its `exit_code`). LEAF raises its own errors (LeafError) for bad values;
# anything else — a ValueError included — is a bug and keeps its traceback.
USER_ERRORS = (LeafError, FileNotFoundError, PermissionError, IsADirectoryError,
               NotADirectoryError)


# Only Typer's public names: typer.core's classes (documented for `cls=`), typer.BadParameter
# and the `display_type_rich` hook they call since Typer 0.29 (pyproject's floor). Click's
# classes are Typer's private copy since 0.26 (typer._click), so a parameter is typed Any here.
class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str:
        # no `<bool>`/`<str>` tags (the help text says what a value is); a choice (an Enum of
        # cli.options) shows its values, as Typer does
        if getattr(getattr(self, "type_descriptor", None), "is_choice", False):
            return super().display_type_rich(ctx) or ""
        return ""


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: object) -> str:
        return ""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        # a hidden argument (the old place of an option, still read) is not in the usage line
        return [] if self.hidden else super().get_usage_pieces(ctx)


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


def _print_error(message: str, exit_code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(exit_code)


class LeafGroup(_PlainHelp, TyperGroup):
    """Catches user errors of every command in one place: LEAF's own, a missing file, and a
    value an option does not take (a choice not among its values)."""

    def invoke(self, ctx):  # noqa: ANN001, ANN201
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            _print_error(one_line(error), getattr(error, "exit_code", 2))
        except typer.BadParameter as error:
            _print_error(one_line(Exception(_bad_value(error))))


def _bad_value(error: typer.BadParameter) -> str:
    """``--selection: 'bogus' is not one of 'random', …``: the option and what is wrong with
    its value (Typer validates with pydantic, which prefixes its messages with its error
    type); a missing one as Typer says it."""
    if not error.message or error.param is None:
        return error.format_message()
    return f"{'/'.join(error.param.opts)}: {error.message.removeprefix('Value error, ')}"


class LeafTyper(typer.Typer):
    """Every command of the app gets the plain help of ``LeafCommand``."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None,  # type: ignore[override]
                **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or LeafCommand, **kwargs)


def group(help: str) -> LeafTyper:  # noqa: A002 - Typer's name
    """A command group (``leaf rate …``): errors and help as every command's."""
    return LeafTyper(cls=LeafGroup, no_args_is_help=True, help=help)


def fail(message: str) -> NoReturn:
    """A user's mistake the command itself finds: one ``error:`` line, exit code 2."""
    _print_error(message)


def note(message: str) -> None:
    """A line for the user on stderr (``note: …``): what the command did besides its output."""
    typer.echo(f"note: {message}", err=True)


def renamed(old: str, new: str) -> None:
    """An option or argument read under its old name: say the new one, once."""
    note(f"{old} is now {new}")


def given_once(option: str | None, old_argument: str | None, command: str) -> str:
    """The data set (``--data``) of a command that took it as an argument before: the old place
    still works, with a note; given twice or not at all is an error."""
    if old_argument is not None:
        if option is not None:
            raise ConfigError(f"give the data set once, as --data (not also as {old_argument!r})")
        renamed(f"`leaf {command} DATA`", f"`leaf {command} --data DATA`")
        return old_argument
    if option is None:
        raise ConfigError("missing option '--data': the data set (a dataset folder, CSV or "
                          "image folder)")
    return option


def show_version(value: bool) -> None:
    if value:
        from leafiqa.version import __version__, git_commit

        commit = git_commit()
        typer.echo(f"leaf {__version__}" + (f" ({commit})" if commit else ""))
        raise typer.Exit()


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (a test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def setup_logging() -> None:
    """Every message of LEAF's loggers once on stderr, as ``warning: …`` (no ``root:``)."""
    logger = logging.getLogger("leafiqa")
    for handler in [h for h in logger.handlers if getattr(h, "leaf_cli", False)]:
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.leaf_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_OneLine())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``384`` or ``224,512`` (an image pyramid) → sizes."""
    from leafiqa.data.images import as_sizes

    try:
        return as_sizes([int(part) for part in text.replace("+", ",").split(",") if part.strip()])
    except ValueError:
        raise ConfigError(f"--input-size: expected a size or sizes like 224,512, got {text!r}"
                          ) from None


def parse_json_object(text: str | None, option: str) -> dict | None:
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{option}: not valid JSON ({error.msg} at character {error.pos})")
    if not isinstance(value, dict):
        fail(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


def parse_overrides(settings: list[str] | None, option: str = "--set",
                    example: str = "student.input_size=384") -> dict[str, object]:
    """``key.sub=value`` pairs, values read as YAML (``384``, ``[224, 512]``, ``null``)."""
    import yaml

    overrides: dict[str, object] = {}
    for setting in settings or []:
        key, equals, text = setting.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"{option} {setting!r}: expected key=value, e.g. {example}")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{option} {setting!r}: value is not valid YAML ({error})") from None
    return overrides
