"""What a command is given, read as LEAF reads it: a data set by its path (its reader told
apart by the files it holds) and the images to score from files, folders, globs and lists.
Nothing heavy is imported here (``leaf score`` starts without pandas)."""

from __future__ import annotations

import csv
import glob
from pathlib import Path
from typing import TYPE_CHECKING

from leafiqa.data.readers import not_regular, read_dataset, walk_images
from leafiqa.defaults import DEFAULT_SPLIT
from leafiqa.errors import DataError

if TYPE_CHECKING:
    from leafiqa.data.manifest import Manifest

#: the columns a CSV or Parquet list of images may name its paths in, in this order
PATH_COLUMNS = ("path", "name", "image")


def detect_kind(target: Path) -> str:
    """The reader for a path: a file is a CSV; a folder by the files it holds."""
    if target.is_file():
        return "csv"
    if (target / "data.csv").is_file() and (target / "splits.csv").is_file():
        with (target / "data.csv").open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        return "agiqa3k" if "mos_quality" in header else "clive"
    if (target / "koniq10k_scores_and_distributions.csv").is_file():
        return "koniq10k"
    if (target / "dmos.csv").is_file():
        return "kadid10k"
    return "folder"


def resolve_kind(kind: str, path: str | Path) -> str:
    """``kind``, or for ``auto`` the one ``detect_kind`` finds at ``path``."""
    return detect_kind(Path(path)) if kind == "auto" else kind


def read_data(path: str | Path, kind: str = "auto", split: str | None = DEFAULT_SPLIT,
              limit: int | None = None, image_root: Path | None = None) -> Manifest:
    """A data set as every command reads it: ``kind`` (``auto``: ``detect_kind``), the
    ``split`` column of the data sets that ship several, the first ``limit`` images, and for a
    CSV the folder its image names are relative to."""
    kind = resolve_kind(kind, path)
    options: dict[str, object] = {"split": split} if kind in ("agiqa3k", "clive") else {}
    if image_root is not None:
        if kind != "csv":
            raise DataError(f"--image-root applies to a CSV data set only ({path} is {kind})")
        options["image_root"] = image_root
    manifest = read_dataset(kind, Path(path), **options)
    return manifest.head(limit) if limit else manifest


def _listed_paths(target: Path, names: list[str]) -> list[Path]:
    return [Path(name) if Path(name).is_absolute() else target.parent / name for name in names]


def _column(target: Path, columns: list[str]) -> str:
    column = next((c for c in PATH_COLUMNS if c in columns), None)
    if column is None:
        raise DataError(f"{target}: needs a 'path' or 'name' column")
    return column


def _paths_of(entry: str, unreadable: list[str] | None) -> list[Path]:
    target = Path(entry)
    suffix = target.suffix.lower()
    if target.is_dir():
        found, failed = walk_images(target)
        if unreadable is not None:
            unreadable += failed
        return found
    if suffix == ".csv" and target.is_file():
        with target.open(newline="") as handle:
            reader = csv.DictReader(handle)
            column = _column(target, list(reader.fieldnames or []))
            return _listed_paths(target, [row[column] for row in reader])
    if suffix == ".parquet" and target.is_file():
        import pyarrow.parquet as pq

        column = _column(target, pq.read_schema(target).names)
        return _listed_paths(target, pq.read_table(target, columns=[column]).column(0)
                             .to_pylist())
    if suffix == ".txt" and target.is_file():
        return [Path(line.strip()) for line in target.read_text().splitlines() if line.strip()]
    if any(ch in entry for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(entry, recursive=True))
    return [target]


def expand_inputs(inputs: list[str], unreadable: list[str] | None = None) -> list[Path]:
    """Image paths from files, folders, globs, .txt lists, CSVs and Parquet files; folders that
    cannot be listed are added to ``unreadable`` with their reason (never silently left out)."""
    paths = [path for entry in inputs for path in _paths_of(entry, unreadable)]
    # a named pipe (or socket, device) named directly or in a list: never opened (a pipe
    # blocks its reader until something writes to it)
    special = {path: reason for path in paths if (reason := not_regular(path))}
    if special and unreadable is not None:
        unreadable += list(dict.fromkeys(special.values()))
    return [path for path in paths if path not in special]


def list_files(inputs: list[str]) -> list[Path]:
    """The inputs that are files themselves (lists of paths, data sets, images)."""
    return [Path(entry) for entry in inputs if Path(entry).is_file()]
