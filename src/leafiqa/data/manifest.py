"""Image manifests: the list of images a LEAF run works on, with optional MOS and splits."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from leafiqa.errors import DataError

if TYPE_CHECKING:  # pandas is imported where a frame is built: `leaf score` needs none
    import pandas as pd

log = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(path: str | Path) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (a name
    made on another system) become ``\\xNN`` escapes instead of aborting the write."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def first_few(names: Sequence[str], separator: str = ", ", limit: int = 5) -> str:
    """The first ``limit`` of ``names`` joined, and how many more there are (for messages)."""
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return separator.join(names[:limit]) + more


def csv_cell(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula: one starting with ``=``,
    ``+``, ``-``, ``@`` (or a tab or carriage return) gets a leading apostrophe (OWASP's
    advice for CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class ImageItem:
    """One image of a manifest. ``name`` is its path relative to the manifest's root."""

    path: Path
    name: str
    mos: float | None = None
    std: float | None = None
    split: str | None = None
    #: the MOS's standard error against a large panel's (a rating study's few raters; None:
    #: a lab's MOS, taken as exact)
    se: float | None = None


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
        # an image merged from several rows (``deduplicate``) whose names the split file puts
        # in train and in test trains: it can never be both
        groups: list[list[str]] = self.extra.get("duplicates", [])  # type: ignore[assignment]
        aliases = {group[0]: group for group in groups}

        def split_of(item: ImageItem) -> str:
            values = {splits[name] for name in aliases.get(item.name, [item.name])
                      if name in splits}
            if len(values) > 1:
                log.warning("%s: one image listed in %s (%s): it trains", column,
                            " and ".join(sorted(values)), ", ".join(
                                f"'{name}'" for name in aliases[item.name]))
                return "train"
            return splits[item.name]

        return self.subset(replace(i, split=split_of(i)) for i in self.items)

    def fingerprint(self) -> str:
        """A hash of names and MOS: identifies the training data inside a model file."""
        digest = hashlib.sha256()
        for item in self.items:
            digest.update(f"{item.name}\t{item.mos}\t{item.split}\n".encode())
        return digest.hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "name": [printable(i.name) for i in self.items],
                "path": [printable(i.path) for i in self.items],
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
    se_column: str | None = None,
) -> Manifest:
    """Turn a table into a manifest, validating every row; row numbers are the file's lines."""
    columns = [name_column] + [c for c in (mos_column, std_column, split_column, se_column)
                               if c]
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
            kind = " (not a regular file)" if path.exists() else ""
            missing_files.append(f"row {row}: {printable(path)}{kind}")
        mos = parse_number(record[mos_column], source=source, row=row, column=mos_column) if (
            mos_column
        ) else None
        std = parse_number(record[std_column], source=source, row=row, column=std_column) if (
            std_column
        ) else None
        se = parse_number(record[se_column], source=source, row=row, column=se_column) if (
            se_column
        ) else None
        if se is not None and se < 0:
            raise DataError(f"{source}: row {row}, column '{se_column}': a standard error is "
                            f"never negative, got {se:g}")
        split = None
        if split_column and isinstance(record[split_column], str) and record[split_column]:
            split = str(record[split_column]).strip()
        items.append(ImageItem(path=path, name=name, mos=mos, std=std, split=split, se=se))
    if missing_files:
        raise DataError(f"{source}: {len(missing_files)} image file(s) not found: "
                        f"{first_few(missing_files, '; ')}")
    if not items:
        raise DataError(f"{source}: no images listed")
    return Manifest(items, source=source)


def _same_file_key(path: Path) -> str:
    # no symlink resolution (a system call per folder of every path): a file reached through
    # a link has the same size and bytes, which the content check catches
    return os.path.normpath(os.path.abspath(path))


def _content_groups(items: Sequence[ImageItem]) -> list[list[int]]:
    """Positions of items whose files have the same bytes. Only files of equal size are
    hashed (a data set of unique images costs one ``stat`` per file)."""
    from leafiqa.data.images import ImageDecodeError, content_hash

    by_size: dict[int, list[int]] = {}
    for position, item in enumerate(items):
        try:
            by_size.setdefault(item.path.stat().st_size, []).append(position)
        except OSError:
            continue  # a missing file is reported by the reader, not here
    groups: list[list[int]] = []
    for positions in by_size.values():
        if len(positions) < 2:
            continue
        by_hash: dict[str, list[int]] = {}
        for position in positions:
            try:
                by_hash.setdefault(content_hash(items[position].path), []).append(position)
            except ImageDecodeError:
                continue
        groups += [group for group in by_hash.values() if len(group) > 1]
    return groups


def _merge(items: list[ImageItem], source: str) -> ImageItem:
    """One item for rows that name the same image: the first row's name and path, the mean
    of the MOS given. Rows that disagree on the split make it a training image: kept out of
    the test set, it can no longer be both."""
    splits = {item.split for item in items if item.split}
    split = splits.pop() if len(splits) == 1 else None
    if len(splits) > 0:
        split = "train"
        names = ", ".join(f"'{printable(item.name)}' ({item.split})" for item in items)
        log.warning("%s: one image listed in train and in test (%s): it trains", source, names)
    mos = [item.mos for item in items if item.mos is not None]
    std = [item.std for item in items if item.std is not None]
    if len(set(mos)) > 1:
        log.warning("%s: '%s' has %d different MOS (%s): their mean %.6g is used", source,
                    printable(items[0].name), len(mos), ", ".join(f"{m:g}" for m in mos),
                    sum(mos) / len(mos))
    return replace(items[0], mos=float(sum(mos) / len(mos)) if mos else None,
                   std=std[0] if std else None, split=split)


def deduplicate(manifest: Manifest, *, by_content: bool = True) -> Manifest:
    """Rows that name one image — the same file (by path) or the same bytes under another name
    — merged into one, with a warning naming them, so that an image counts once and can never
    be both a training and a test image. The pairs found are kept in
    ``manifest.extra["duplicates"]``."""
    items = manifest.items
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for position, item in enumerate(items):
        key = _same_file_key(item.path)
        if key in first:
            parent[root(position)] = root(first[key])
        else:
            first[key] = position
    if by_content:
        distinct = list(first.values())
        for group in _content_groups([items[d] for d in distinct]):
            positions = [distinct[g] for g in group]
            for position in positions[1:]:
                parent[root(position)] = root(positions[0])
    groups: dict[int, list[int]] = {}
    for position in range(len(items)):
        groups.setdefault(root(position), []).append(position)
    if all(len(group) == 1 for group in groups.values()):
        return manifest
    merged: list[ImageItem] = []
    duplicates: list[list[str]] = []
    for position, item in enumerate(items):
        group = groups[root(position)]
        if group[0] != position:
            continue
        if len(group) > 1:
            merged.append(_merge([items[g] for g in group], manifest.source))
            duplicates.append([printable(items[g].name) for g in group])
        else:
            merged.append(item)
    shown = first_few([" = ".join(f"'{n}'" for n in names) for names in duplicates], "; ")
    count = f"{len(duplicates)} image{'s' if len(duplicates) > 1 else ''}"
    log.warning("%s: %s listed more than once (same file or same content), each counted "
                "once: %s", manifest.source, count, shown)
    result = Manifest(merged, source=manifest.source, extra=dict(manifest.extra))
    result.extra["duplicates"] = duplicates
    return result


def with_labels(pool: Manifest, labels: Manifest) -> Manifest:
    """``pool``'s images, each with the MOS (and std) ``labels`` gives it — matched by file, so a
    label file written elsewhere (names relative to it) matches too — and no MOS for the rest.
    A labelled image outside the pool is an error naming it."""
    by_file = {item.path.resolve(): item for item in labels if item.mos is not None}
    pool_files = [item.path.resolve() for item in pool]
    in_pool = set(pool_files)
    strays = [item.name for file, item in by_file.items() if file not in in_pool]
    if strays:
        raise DataError(f"{labels.source}: {len(strays)} labelled image(s) are not in the pool "
                        f"{pool.source}: {first_few(strays)}")
    items = []
    for item, file in zip(pool, pool_files, strict=True):
        label = by_file.get(file)
        items.append(replace(item, mos=label.mos if label else None,
                             std=label.std if label else None,
                             se=label.se if label else None))
    return Manifest(items, f"{pool.source} + labels {labels.source}", dict(pool.extra))
