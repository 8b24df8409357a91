"""Labels that arrive in rounds, kept in one file: ``leaf ratings export STUDY --out
labels.csv`` merges each study (one round) into the label file already there — the other
rounds' rows kept, this study's rows replaced, each row's round in a ``round`` column (the
study folder's name) — so ``leaf select --labels`` and ``leaf calibrate --labels`` always read
every label so far. And the gold images of a study (``read_gold``): one chosen as a study
image is dropped from the gold set while enough gold remains."""

from __future__ import annotations

import contextlib
import csv
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from leafiqa.errors import DataError
from leafiqa.labelling.study import read_image_list

ROUND_COLUMN = "round"
#: gold images a study keeps at least when some of them are chosen as study images
MIN_GOLD = 2


@dataclass
class RoundsMerge:
    """What merging one round into a label file did."""

    this_round: str
    rows: int  # this round's rows
    per_round: dict[str, int] = field(default_factory=dict)  # every round's rows, in order
    replaced: list[str] = field(default_factory=list)  # names other rounds had labelled

    @property
    def total(self) -> int:
        return sum(self.per_round.values())

    def summary(self) -> str:
        if len(self.per_round) == 1:
            return f"(round {self.this_round})"
        rounds = ", ".join(f"{name or '(no round)'} {count}"
                           for name, count in self.per_round.items())
        return f"of round {self.this_round}; {self.total} in all ({rounds})"


def read_label_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and rows of a label file (``name`` and ``mos`` columns at least)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    if "name" not in columns or "mos" not in columns:
        raise DataError(f"{path}: exists and is not a label file (needs name and mos "
                        "columns); give another --out, or move it away to start afresh")
    return columns, rows


def merge_round(fresh: Path, out: Path, round_name: str) -> RoundsMerge:
    """Write ``out``: the rows of the label file already there (if any) but this round's and
    those naming an image ``fresh`` labels (a later rating replaces an earlier one), with
    ``fresh``'s rows (a ``leaf ratings export``) in their place — where this round's rows
    were, else at the end. Each row gets its ``round``; written to a temporary file first, so a
    failure leaves ``out`` as it was."""
    columns, new_rows = read_label_rows(fresh)
    old_columns, old_rows = read_label_rows(out) if out.is_file() else ([], [])
    names = {row["name"] for row in new_rows}
    kept: list[dict[str, str]] = []
    at = None  # where this round's rows were
    replaced = []
    for row in old_rows:
        if row.get(ROUND_COLUMN, "") == round_name:
            at = len(kept) if at is None else at
        elif row["name"] in names:
            replaced.append(row["name"])
        else:
            kept.append(row)
    for row in new_rows:
        row[ROUND_COLUMN] = round_name
    merged = (kept + new_rows) if at is None else kept[:at] + new_rows + kept[at:]
    header = [*columns, ROUND_COLUMN, *[c for c in old_columns
                                        if c not in columns and c != ROUND_COLUMN]]
    with _sibling(out, ".partial") as partial:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, header, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(merged)
        partial.replace(out)
    counts = Counter(row.get(ROUND_COLUMN, "") for row in merged)
    return RoundsMerge(round_name, len(new_rows), dict(counts), replaced)


@contextlib.contextmanager
def _sibling(path: Path, suffix: str) -> Iterator[Path]:
    """A temporary file beside ``path`` (the same file system: it can replace ``path``),
    removed when it is still there at the end."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def fresh_labels(out: Path) -> Iterator[Path]:
    """Where an export writes one round's labels before ``merge_round`` takes them into
    ``out``: beside ``out`` (so names relative to its folder stay right), removed afterwards."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with _sibling(out, ".round.csv") as temporary:
        yield temporary


def round_counts(path: Path) -> dict[str, int]:
    """Rows per round of a label file (empty: not a CSV with a ``round`` column)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if ROUND_COLUMN not in (reader.fieldnames or []):
                return {}
            return dict(Counter(row[ROUND_COLUMN] for row in reader
                                if row.get("mos", "").strip()))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}


@dataclass
class GoldSet:
    """A study's gold images and their answers, less those chosen as study images."""

    images: list[tuple[str, Path]]
    answers: dict[str, float]
    dropped: list[str]


def drop_chosen_gold(images: Sequence[tuple[str, Path]], gold: Sequence[tuple[str, Path]],
                     answers: dict[str, float], source: Path | None = None) -> GoldSet:
    """Gold images that are also study images (a later round chose a gold photo): dropped
    from the gold set while at least ``MIN_GOLD`` gold images remain, else one error naming
    them. Matched by name or by file."""
    names = {name for name, _ in images}
    files = {path.resolve() for _, path in images}
    chosen = [name for name, path in gold if name in names or path.resolve() in files]
    if not chosen:
        return GoldSet(list(gold), dict(answers), [])
    remaining = [(name, path) for name, path in gold if name not in chosen]
    if len(remaining) < MIN_GOLD:
        where = f"{source}: " if source else ""
        raise DataError(f"{where}gold images also listed as study images: {', '.join(chosen)}; "
                        f"{len(remaining)} gold image(s) would remain (at least {MIN_GOLD}): "
                        "choose other gold images, or keep them out of selection with "
                        "`leaf select --exclude GOLD.csv`")
    return GoldSet(remaining, {k: v for k, v in answers.items() if k not in chosen}, chosen)


def read_gold(path: Path, scale: str, allowed_roots: Sequence[Path] = ()
              ) -> tuple[list[tuple[str, Path]], dict[str, float]]:
    """A CSV ``name,value`` (``mos`` or ``level`` also name the answer column) of hidden gold
    images with their known answer on the study's scale; names relative to the CSV."""
    images = read_image_list(path, allowed_roots=allowed_roots)
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
