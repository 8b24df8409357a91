"""Image manifests: the list of images a LEAF run works on, with optional MOS and splits."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from leafiqa.errors import DataError


@dataclass(frozen=True)
class ImageItem:
    """One image of a manifest. ``name`` is its path relative to the manifest's root."""

    path: Path
    name: str
    mos: float | None = None
    std: float | None = None
    split: str | None = None


@dataclass
class Manifest:
    """An ordered list of images with the file it came from (for error messages and hashes)."""

    items: list[ImageItem]
    source: str = "<memory>"
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ImageItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> ImageItem:
        return self.items[index]

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    def mos_array(self) -> list[float]:
        missing = [item.name for item in self.items if item.mos is None]
        if missing:
            raise DataError(f"{self.source}: images without MOS: {missing[:5]}")
        return [float(item.mos) for item in self.items]  # type: ignore[arg-type]

    def subset(self, items: Iterable[ImageItem], label: str = "") -> Manifest:
        suffix = f"[{label}]" if label else ""
        return Manifest(list(items), source=f"{self.source}{suffix}", extra=dict(self.extra))

    def split(self, name: str) -> Manifest:
        """The images whose split column equals ``name`` (e.g. ``train``, ``test``)."""
        if not any(item.split is not None for item in self.items):
            raise DataError(f"{self.source}: no split column, cannot select split '{name}'")
        return self.subset((i for i in self.items if i.split == name), name)

    def spread(self, n: int) -> Manifest:
        """``n`` images evenly spaced through the manifest (a quick, representative subset)."""
        if n >= len(self.items):
            return self
        step = len(self.items) / n
        return self.subset([self.items[int(i * step)] for i in range(n)], f"~{n}")

    def head(self, n: int) -> Manifest:
        return self.subset(self.items[:n], f":{n}")

    def with_split(self, splits: dict[str, str], column: str) -> Manifest:
        missing = [i.name for i in self.items if i.name not in splits]
        if missing:
            raise DataError(
                f"{self.source}: split column '{column}' has no entry for {len(missing)} "
                f"images, e.g. {missing[:3]}"
            )
        return self.subset(replace(i, split=splits[i.name]) for i in self.items)

    def fingerprint(self) -> str:
        """A hash of names and MOS: identifies the training data inside a model file."""
        digest = hashlib.sha256()
        for item in self.items:
            digest.update(f"{item.name}\t{item.mos}\t{item.split}\n".encode())
        return digest.hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "name": [i.name for i in self.items],
                "path": [str(i.path) for i in self.items],
                "mos": [i.mos for i in self.items],
                "std": [i.std for i in self.items],
                "split": [i.split for i in self.items],
            }
        )


def parse_number(value: object, *, source: str, row: int, column: str) -> float | None:
    """A MOS/std cell as float; empty is None; anything else non-numeric is a DataError."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(
            f"{source}: row {row}, column '{column}': expected a number, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise DataError(f"{source}: row {row}, column '{column}': not a finite number ({value!r})")
    return number


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; found {list(frame.columns)}"
        )


def build_manifest(
    frame: pd.DataFrame,
    *,
    root: Path,
    source: str,
    name_column: str,
    mos_column: str | None,
    std_column: str | None = None,
    split_column: str | None = None,
    check_files: bool = True,
    header_rows: int = 1,
) -> Manifest:
    """Turn a table into a manifest, validating every row; row numbers are the file's lines."""
    columns = [name_column] + [c for c in (mos_column, std_column, split_column) if c]
    require_columns(frame, columns, source)
    items: list[ImageItem] = []
    missing_files: list[str] = []
    for position, record in enumerate(frame.to_dict("records")):
        row = position + header_rows + 1
        raw_name = record[name_column]
        if raw_name is None or (isinstance(raw_name, float) and math.isnan(raw_name)):
            raise DataError(f"{source}: row {row}, column '{name_column}': empty image name")
        name = str(raw_name).strip()
        path = Path(name) if Path(name).is_absolute() else root / name
        if check_files and not path.is_file():
            missing_files.append(f"row {row}: {path}")
        mos = parse_number(record[mos_column], source=source, row=row, column=mos_column) if (
            mos_column
        ) else None
        std = parse_number(record[std_column], source=source, row=row, column=std_column) if (
            std_column
        ) else None
        split = None
        if split_column and isinstance(record[split_column], str) and record[split_column]:
            split = str(record[split_column]).strip()
        items.append(ImageItem(path=path, name=name, mos=mos, std=std, split=split))
    if missing_files:
        shown = "; ".join(missing_files[:5])
        more = f" (and {len(missing_files) - 5} more)" if len(missing_files) > 5 else ""
        raise DataError(f"{source}: {len(missing_files)} image file(s) not found: {shown}{more}")
    if not items:
        raise DataError(f"{source}: no images listed")
    return Manifest(items, source=source)
