"""Where ``leaf score`` writes: one row per input image (``path``, ``score``, ``error``), a
failed image keeps its row with an empty score and the reason.

- no ``--out``: ``path<TAB>score`` lines on stdout (just the score for a single image); a
  failed image is reported on stderr, not on stdout;
- ``--out -``: CSV on stdout, row by row;
- ``--out FILE``: the format follows the extension. CSV is written as it goes (an existing
  scores CSV is resumed: the paths already in it are not scored again); JSON and Parquet rows
  also go, as they come, to a hidden ``.FILE.*.partial.csv`` beside the output, and the
  output is written to a temporary file renamed at the end, so a failure at the end (a full
  disk) keeps every score. An existing output is replaced only with ``force``.

Paths that are not UTF-8 are written with ``\\xNN`` escapes; text cells that a spreadsheet
would run as a formula get a leading apostrophe (``data.manifest.csv_cell``)."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from leafiqa.data.manifest import csv_cell, printable
from leafiqa.errors import ConfigError, DataError

FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}
COLUMNS = ["path", "score", "error"]
STDOUT = "-"


def output_format(path: Path) -> str:
    """The format for an output file name; anything else is refused before scoring starts."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"--out {printable(path)}: unknown output format "
                          f"'{path.suffix or '(none)'}'; use one of {sorted(FORMATS)}") from None


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_not_an_input(out: Path, inputs: Iterable[Path], option: str = "--out") -> None:
    """An output is never one of the inputs (``--out data.csv`` would replace the data set)."""
    for source in inputs:
        if _same_path(out, Path(source)):
            raise DataError(f"{option} {printable(out)}: is one of the inputs; choose another "
                            "output file")


def check_writable_target(out: Path, force: bool, option: str = "--out") -> None:
    """Before any work: the output's folder can be made and written, and an existing output
    is only replaced with ``--force``."""
    if out.is_dir():
        raise DataError(f"{option} {printable(out)}: is a folder")
    if out.exists() and not force:
        raise DataError(f"{option} {printable(out)}: already exists; use --force to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{option} {printable(out)}: cannot create its folder "
                        f"({error.strerror or error})") from None
    if not os.access(out.parent, os.W_OK):
        raise DataError(f"{option} {printable(out)}: folder is not writable")


def score_text(score: float) -> str:
    return f"{score:.6f}"


def _is_failure(score: float | None) -> bool:
    return score is None or (isinstance(score, float) and math.isnan(score))


@dataclass
class ScoreWriter:
    """Rows of ``leaf score``: ``target`` None (text on stdout), ``"-"`` (CSV on stdout) or
    a file path. ``done`` holds the (printable) paths an existing CSV already has: the caller
    skips them (resume)."""

    target: Path | str | None
    force: bool = False
    single: bool = False  # stdout text for one image: the score alone
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    format: str = ""
    scored: int = 0
    failed: int = 0
    done: set[str] = field(default_factory=set)
    resumed: int = 0
    partial: Path | None = None
    _rows: list[dict] = field(default_factory=list)
    _created: Path | None = None  # a file this writer made (removed if it stops with no row)
    _handle: IO[str] | None = None
    _csv: Any = None  # a csv writer once the output is open

    def __post_init__(self) -> None:
        if self.target is None:
            self.format = "text"
        elif str(self.target) == STDOUT:
            self.format = "csv"
            self._csv = csv.writer(self.stdout, lineterminator="\n")
            self._csv.writerow(COLUMNS)
        else:
            self.target = Path(self.target)
            self.format = output_format(self.target)
            self._open_file(self.target)

    @property
    def description(self) -> str:
        if self.target is None:
            return "stdout"
        return "stdout (CSV)" if str(self.target) == STDOUT else printable(self.target)

    def _open_file(self, out: Path) -> None:
        resume = self.format == "csv" and out.is_file() and not self.force
        if resume:
            self.done = existing_paths(out)
        else:
            check_writable_target(out, self.force)
        self._created = None if resume else out
        if self.format == "csv":
            self._handle = out.open("a" if resume else "w", newline="", encoding="utf-8")
            if resume:
                self.resumed = len(self.done)
            else:
                csv.writer(self._handle).writerow(COLUMNS)
        else:
            handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.",
                                            suffix=".partial.csv")
            self.partial = Path(name)
            self._handle = os.fdopen(handle, "w", newline="", encoding="utf-8")
            csv.writer(self._handle).writerow(COLUMNS)
        self._csv = csv.writer(self._handle)

    def add(self, path: Path | str, score: float | None, error: str = "") -> None:
        name = printable(path)
        error = printable(error)
        if _is_failure(score):
            score, self.failed = None, self.failed + 1
        else:
            self.scored += 1
        if self.format == "text":
            if score is not None:
                line = score_text(score) if self.single else f"{name}\t{score_text(score)}"
                print(line, file=self.stdout, flush=True)
            return
        assert self._csv is not None
        self._csv.writerow([csv_cell(name), "" if score is None else score_text(score),
                            csv_cell(error)])
        if self.format in ("json", "parquet"):
            self._rows.append({"path": name, "score": score, "error": error or None})

    def flush(self) -> None:
        if self._handle:
            self._handle.flush()
        elif self.target is not None:
            self.stdout.flush()

    def close(self) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None
        if self.format in ("json", "parquet") and self.partial is not None:
            self._finish(Path(self.target))  # type: ignore[arg-type]

    def abandon(self) -> None:
        """Stop without writing the final JSON/Parquet file (an error stopped the run): the
        rows so far stay in the partial CSV."""
        if self._handle:
            self._handle.close()
            self._handle = None
        if self.scored + self.failed == 0:
            for made in (self.partial, self._created if self.format == "csv" else None):
                if made is not None:
                    made.unlink(missing_ok=True)
            self.partial = None

    def _finish(self, out: Path) -> None:
        assert self.partial is not None
        handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(handle)
        temporary = Path(name)
        try:
            if self.format == "json":
                temporary.write_text(json.dumps(self._rows, indent=1, ensure_ascii=False),
                                     encoding="utf-8")
            else:
                import pandas as pd

                frame = pd.DataFrame(self._rows, columns=COLUMNS)
                frame["score"] = frame["score"].astype("float64")
                frame["error"] = frame["error"].astype("string")
                frame.to_parquet(temporary)
            os.replace(temporary, out)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise DataError(f"--out {printable(out)}: could not be written "
                            f"({error.strerror or error}); the {len(self._rows)} rows are kept "
                            f"in {printable(self.partial)}") from None
        self.partial.unlink(missing_ok=True)
        self.partial = None

    def __enter__(self) -> ScoreWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


def _drop_partial_line(out: Path) -> None:
    """A run killed while writing a row leaves half a line: cut it before appending."""
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        with out.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def existing_paths(out: Path) -> set[str]:
    """The paths a scores CSV already holds (to resume it). A CSV that is not a scores file
    is refused: it might be a data set."""
    with out.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return set()
        if header != COLUMNS:
            raise DataError(f"--out {printable(out)}: exists and is not a scores file (columns "
                            f"{header[:5]}); use --force to replace it")
    _drop_partial_line(out)
    with out.open(newline="", encoding="utf-8", errors="replace") as handle:
        paths = {row[0] for row in csv.reader(handle) if row}
        paths.discard(COLUMNS[0])
    # the cells were written formula-safe; compare the paths as they were given
    return {path[1:] if path.startswith("'") and path[1:].startswith(
        ("=", "+", "-", "@", "\t", "\r")) else path for path in paths}
