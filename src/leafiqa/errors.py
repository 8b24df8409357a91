"""One error tree for everything a user can get wrong (a file, a config value, a teacher, a
model file, a backbone). The CLI catches ``LeafError`` in one place and prints one line; the
old bases (``ValueError`` / ``RuntimeError``) stay so callers that caught those still do."""

from __future__ import annotations


def quoted(name: object) -> str:
    """``name`` (a file name, a key, a URL) as it may appear in a one-line error: as is when
    every character prints, else repr-quoted so a newline or control character in it cannot
    break the line or forge a second one."""
    text = str(name)
    return text if text.isprintable() else repr(text)


class LeafError(Exception):
    """Root of LEAF's user-facing errors: the message names the file or field at fault."""


class DataError(LeafError, ValueError):
    """A dataset, manifest, image or store that cannot be read as asked."""


class ConfigError(LeafError, ValueError):
    """A config file or option with a wrong key, type or value."""


class NothingSucceeded(DataError):
    """Every input of a step failed (no image scored, decoded or judged): the command exits 1,
    not 2 — its arguments were fine, the inputs were not."""

    exit_code = 1


class TeacherError(LeafError, RuntimeError):
    """One judgment could not be obtained (server error, garbage answer, missing record)."""


class ModelFileError(LeafError, ValueError):
    """A LEAF model file that is missing, damaged or does not match its network."""


class BackboneError(LeafError, RuntimeError):
    """A backbone that is unknown or whose package is not installed."""


__all__ = ["BackboneError", "ConfigError", "DataError", "LeafError", "ModelFileError",
           "NothingSucceeded", "TeacherError", "quoted"]
