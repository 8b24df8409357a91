"""Readers for the MOS files IQA datasets ship with; each returns a validated Manifest."""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leafiqa.data.manifest import (
    DataError,
    Manifest,
    build_manifest,
    deduplicate,
    first_few,
    printable,
    require_columns,
)
from leafiqa.defaults import DEFAULT_SPLIT

if TYPE_CHECKING:  # pandas is imported where a table is read: `leaf score` needs none
    import pandas as pd

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: not a readable CSV ({error})") from None


SPLIT_VALUES = {"train": "train", "training": "train", "test": "test", "testing": "test"}


def normalise_split_column(frame: pd.DataFrame, source: str) -> None:
    """``split`` cells: ``train``/``test`` in any case (``training``/``testing`` too); an empty
    cell trains (typically an unlabeled image); anything else is an error naming the row."""
    import pandas as pd

    values = []
    for position, raw in enumerate(frame["split"].tolist()):
        text = "" if raw is None or (isinstance(raw, float) and pd.isna(raw)) else str(raw)
        text = text.strip().lower()
        if text and text not in SPLIT_VALUES:
            raise DataError(f"{source}: row {position + 2}, column 'split': expected train or "
                            f"test (or empty), got {raw!r}")
        values.append(SPLIT_VALUES.get(text, "train"))
    frame["split"] = values


def read_plain_csv(
    path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
) -> Manifest:
    """``name[,mos][,std][,split][,se]`` (``path`` or ``image`` also accepted for the name
    column; ``se``: the MOS's standard error against a large panel, as ``leaf ratings export``
    writes it).

    Names are relative to ``image_root`` (default: the CSV's folder); absolute paths are kept.
    A row with an empty ``mos`` is an unlabeled image: the teacher judges it and the student
    distils from it. ``split`` is optional (see ``normalise_split_column``); without it every
    image trains unless a holdout is asked for (``leafiqa.data.splits``)."""
    path = Path(path)
    frame = _read_csv(path)
    name_column = next((c for c in ("name", "path", "image") if c in frame.columns), "name")
    if "split" in frame.columns:
        normalise_split_column(frame, str(path))
    if image_root is not None and not Path(image_root).is_dir():
        raise DataError(f"{image_root}: image root folder not found")
    return build_manifest(
        frame,
        root=Path(image_root) if image_root else path.parent,
        source=str(path),
        name_column=name_column,
        mos_column="mos" if "mos" in frame.columns else None,
        std_column="std" if "std" in frame.columns else None,
        split_column="split" if "split" in frame.columns else None,
        check_files=check_files,
        se_column="se" if "se" in frame.columns else None,
    )


def _read_with_splits(
    root: Path,
    split: str | None,
    *,
    mos_column: str,
    std_column: str,
    check_files: bool,
) -> Manifest:
    """``data.csv`` + ``splits.csv`` (``name, split_1 … split_5``), images in ``images/``."""
    data_csv = root / "data.csv"
    frame = _read_csv(data_csv)
    manifest = build_manifest(
        frame,
        root=root / "images",
        source=str(data_csv),
        name_column="name",
        mos_column=mos_column,
        std_column=std_column,
        check_files=check_files,
    )
    if split is None:
        return manifest
    splits_csv = root / "splits.csv"
    splits = _read_csv(splits_csv)
    require_columns(splits, ["name", split], str(splits_csv))
    mapping = dict(zip(splits["name"].astype(str), splits[split].astype(str), strict=True))
    manifest.source = f"{data_csv}+{splits_csv}:{split}"
    return manifest.with_split(mapping, f"{splits_csv}:{split}")


def read_agiqa3k(
    root: str | Path,
    split: str | None = DEFAULT_SPLIT,
    *,
    check_files: bool = True,
) -> Manifest:
    """AGIQA-3K: ``data.csv`` (``mos_quality``, ``std_quality``) and ``splits.csv``."""
    return _read_with_splits(Path(root), split, mos_column="mos_quality",
                             std_column="std_quality", check_files=check_files)


def read_clive_dev(
    root: str | Path,
    split: str | None = DEFAULT_SPLIT,
    *,
    check_files: bool = True,
) -> Manifest:
    """The shared LIVE Challenge development part: ``data.csv`` (``name, original_name, mos,
    std``, MOS 0–100) and ``splits.csv`` like AGIQA-3K's."""
    return _read_with_splits(Path(root), split, mos_column="mos", std_column="std",
                             check_files=check_files)


def read_koniq10k(root: str | Path, *, check_files: bool = True) -> Manifest:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (``image_name``, ``MOS``, ``SD``);
    images in ``1024x768/`` (or beside the CSV). Its official ``set`` column is used as split."""
    root = Path(root)
    csv = root / "koniq10k_scores_and_distributions.csv"
    frame = _read_csv(csv)
    image_root = root / "1024x768" if (root / "1024x768").is_dir() else root
    if "set" in frame.columns:
        frame = frame.rename(columns={"set": "split"})
    return build_manifest(
        frame,
        root=image_root,
        source=str(csv),
        name_column="image_name",
        mos_column="MOS",
        std_column="SD",
        split_column="split" if "split" in frame.columns else None,
        check_files=check_files,
    )


def read_spaq(root: str | Path, *, check_files: bool = True) -> Manifest:
    """SPAQ: ``MOS and Image attribute scores.xlsx`` (``Image name``, ``MOS``) or a CSV export;
    images in ``TestImage/``."""
    import pandas as pd

    root = Path(root)
    candidates = [
        root / "Annotations" / "MOS and Image attribute scores.xlsx",
        root / "MOS and Image attribute scores.xlsx",
        root / "mos.csv",
    ]
    sheet = next((c for c in candidates if c.is_file()), None)
    if sheet is None:
        looked = [str(c) for c in candidates]
        raise DataError(f"{root}: no SPAQ MOS file found (looked for {looked})")
    if sheet.suffix == ".xlsx":
        try:
            frame = pd.read_excel(sheet)
        except ImportError as error:
            raise DataError(f"{sheet}: reading .xlsx needs openpyxl ({error})") from None
    else:
        frame = _read_csv(sheet)
    image_root = root / "TestImage" if (root / "TestImage").is_dir() else root
    return build_manifest(
        frame,
        root=image_root,
        source=str(sheet),
        name_column="Image name",
        mos_column="MOS",
        check_files=check_files,
    )


def read_live_challenge(root: str | Path, *, check_files: bool = True) -> Manifest:
    """LIVE In the Wild Challenge: ``Data/AllImages_release.mat`` and ``Data/AllMOS_release.mat``
    (+ ``AllStdDev_release.mat`` when present); images in ``Images/``. The first 7 images are
    the training images of the original release and are conventionally dropped; we keep all."""
    import pandas as pd
    from scipy.io import loadmat

    root = Path(root)
    data_dir = root / "Data" if (root / "Data").is_dir() else root
    names_mat = data_dir / "AllImages_release.mat"
    mos_mat = data_dir / "AllMOS_release.mat"
    for mat in (names_mat, mos_mat):
        if not mat.is_file():
            raise DataError(f"{mat}: file not found")
    try:
        names = [str(entry[0][0]) for entry in loadmat(names_mat)["AllImages_release"]]
        mos = [float(v) for v in loadmat(mos_mat)["AllMOS_release"].ravel()]
    except (KeyError, ValueError, IndexError) as error:
        raise DataError(f"{names_mat} / {mos_mat}: unexpected .mat layout ({error})") from None
    if len(names) != len(mos):
        raise DataError(f"{names_mat}: {len(names)} names but {mos_mat}: {len(mos)} MOS values")
    frame = pd.DataFrame({"name": names, "mos": mos})
    std_mat = data_dir / "AllStdDev_release.mat"
    if std_mat.is_file():
        frame["std"] = [float(v) for v in loadmat(std_mat)["AllStdDev_release"].ravel()]
    image_root = root / "Images" if (root / "Images").is_dir() else root
    return build_manifest(
        frame,
        root=image_root,
        source=str(mos_mat),
        name_column="name",
        mos_column="mos",
        std_column="std" if "std" in frame.columns else None,
        check_files=check_files,
    )


def read_kadid10k(root: str | Path, *, check_files: bool = True) -> Manifest:
    """KADID-10k: ``dmos.csv`` (``dist_img``, ``ref_img``, ``dmos``, ``var``); images in
    ``images/``. Despite its name KADID's ``dmos`` grows with quality (1–5): used as MOS."""
    import pandas as pd

    root = Path(root)
    csv = root / "dmos.csv"
    frame = _read_csv(csv)
    require_columns(frame, ["dist_img", "dmos"], str(csv))
    if "var" in frame.columns:
        frame["std"] = pd.to_numeric(frame["var"], errors="coerce") ** 0.5
    image_root = root / "images" if (root / "images").is_dir() else root
    return build_manifest(
        frame,
        root=image_root,
        source=str(csv),
        name_column="dist_img",
        mos_column="dmos",
        std_column="std" if "std" in frame.columns else None,
        check_files=check_files,
    )


NOT_REGULAR = "not a regular file"
_KINDS = ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
          (stat.S_ISBLK, "device"))


def not_regular(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image file without opening it (a named pipe would
    block the reader for ever), or None for a regular file (or one ``open`` will report)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing or unreadable: the decoder names the reason
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a folder: the decoder says "is a folder"
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    return f"{printable(path)}: {NOT_REGULAR} ({kind})"


def walk_images(folder: Path, recursive: bool = True) -> tuple[list[Path], list[str]]:
    """Image files under a folder, sorted, and a reason for each folder that could not be
    listed (an unreadable subfolder is reported, never silently left out) and for each entry
    with an image's name that is not a regular file (a named pipe, a socket, a device: skipped
    without opening it, since reading a pipe waits for a writer)."""
    unreadable: list[str] = []

    def note(error: OSError) -> None:
        reason = "permission denied" if isinstance(error, PermissionError) else (
            error.strerror or str(error))
        unreadable.append(f"{printable(error.filename)}: {reason} (folder not listed)")

    paths: list[Path] = []
    for root, folders, files in os.walk(folder, onerror=note, followlinks=False):
        for name in files:
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(root) / name
            reason = not_regular(path)
            if reason:
                unreadable.append(reason)
            else:
                paths.append(path)
        if not recursive:
            folders.clear()
    return sorted(paths), sorted(unreadable)


def read_folder(folder: str | Path, *, recursive: bool = True) -> Manifest:
    """Every image file under a folder, sorted, without MOS. Subfolders that cannot be listed
    are named in ``manifest.extra["unreadable"]``."""
    from leafiqa.data.manifest import ImageItem

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    paths, unreadable = walk_images(folder, recursive)
    if not paths:
        detail = f" ({'; '.join(unreadable[:3])})" if unreadable else ""
        raise DataError(f"{folder}: no image files found{detail}")
    return Manifest(
        [ImageItem(path=p, name=printable(p.relative_to(folder))) for p in paths],
        source=str(folder),
        extra={"unreadable": unreadable} if unreadable else {},
    )


READERS = {
    "agiqa3k": read_agiqa3k,
    "koniq10k": read_koniq10k,
    "spaq": read_spaq,
    "livec": read_live_challenge,
    "clive": read_clive_dev,
    "kadid10k": read_kadid10k,
    "csv": read_plain_csv,
    "folder": read_folder,
}


def read_split_file(path: str | Path, split: str) -> dict[str, str]:
    """``name → train/test`` from a CSV with a ``name`` column and one column per split
    (``split_1`` … ``split_5``, as AGIQA-3K and clive-dev ship them)."""
    path = Path(path)
    frame = _read_csv(path)
    if split not in frame.columns:
        splits = [c for c in frame.columns if c != "name"]
        raise DataError(f"{path}: no split column '{split}' (columns: {splits})")
    require_columns(frame, ["name", split], str(path))
    return dict(zip(frame["name"].astype(str), frame[split].astype(str), strict=True))


def split_file_has(path: str | Path, split: str) -> bool:
    """Whether the CSV at ``path`` has a column named ``split`` (reads the header only)."""
    return split in _read_csv(Path(path), nrows=0).columns


def find_split_file(data_path: str | Path, explicit: str | Path | None = None) -> Path | None:
    """Where a data set's splits live: ``explicit``, else ``splits.csv`` beside (or in) the data
    path, else the data CSV itself when it carries split columns; None when there is none."""
    if explicit:
        return Path(explicit)
    data_path = Path(data_path)
    folder = data_path if data_path.is_dir() else data_path.parent
    if (folder / "splits.csv").is_file():
        return folder / "splits.csv"
    if data_path.is_file() and data_path.suffix.lower() == ".csv":
        return data_path
    return None


def read_dataset(kind: str, path: str | Path, **options: object) -> Manifest:
    """Dispatch on a dataset kind name (see ``READERS``). Rows naming one image (the same file,
    or the same bytes under two names) are merged with a warning (``deduplicate``)."""
    try:
        reader = READERS[kind]
    except KeyError:
        raise DataError(f"unknown dataset kind '{kind}'; choose from {sorted(READERS)}") from None
    return deduplicate(reader(path, **options))  # type: ignore[operator]


# The MOS scale each known data set declares (its paper's), by reader: (MOS column, low, high)
MOS_SCALES = {"agiqa3k": ("mos_quality", 0.0, 5.0), "clive": ("mos", 0.0, 100.0),
              "livec": ("mos", 0.0, 100.0), "koniq10k": ("MOS", 1.0, 5.0),
              "spaq": ("MOS", 0.0, 100.0), "kadid10k": ("dmos", 1.0, 5.0)}


@dataclass(frozen=True)
class DeclaredScale:
    """The MOS range a data set or a rating study declares for its labels."""

    declared_by: str  # for messages: "the agiqa3k data set", "labels.csv.scale.json (…)"
    column: str
    low: float
    high: float


def scale_declaration(labels: Path) -> Path:
    """The file beside a label CSV in which ``leaf ratings export`` declares the study's
    scale (``{"scale": "acr", "range": [1, 5]}``)."""
    return labels.with_name(labels.name + ".scale.json")


def declared_scale(kind: str, path: Path) -> DeclaredScale | None:
    """The MOS range of a known data set, or of a label CSV exported from a rating study (its
    ``scale_declaration``); None when nothing declares one."""
    if kind in MOS_SCALES:
        column, low, high = MOS_SCALES[kind]
        return DeclaredScale(f"the {kind} data set", column, low, high)
    declaration = scale_declaration(Path(path))
    if kind != "csv" or not declaration.is_file():
        return None
    try:
        payload = json.loads(declaration.read_text(encoding="utf-8"))
        low, high = (float(value) for value in payload["range"])
        scale = str(payload.get("scale", ""))
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise DataError(f"{printable(declaration)}: not a scale declaration "
                        f"{{\"scale\": …, \"range\": [low, high]}} ({error})") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise DataError(f"{printable(declaration)}: field 'range': expected [low, high], got "
                        f"{payload['range']}")
    return DeclaredScale(f"{declaration.name} (the rating study's {scale} scale)", "mos", low,
                         high)


def check_label_values(manifest: Manifest, scale: DeclaredScale | None) -> list[str]:
    """Labels a calibration can take as they are: a MOS off the declared scale is one error
    naming the file, the column and the rows; rows without a MOS (empty or NaN) come back as a
    note naming them, since they are no labels."""
    if scale is not None:
        off = [f"{printable(item.name)}={item.mos:g}" for item in manifest
               if item.mos is not None and not scale.low - 1e-9 <= item.mos <= scale.high + 1e-9]
        if off:
            raise DataError(f"{manifest.source}: column '{scale.column}': {len(off)} MOS outside "
                            f"the range {scale.low:g}–{scale.high:g} that {scale.declared_by} "
                            f"declares: {first_few(off)}")
    missing = [printable(item.name) for item in manifest if item.mos is None]
    if missing and len(missing) < len(manifest):
        return [f"{manifest.source}: {len(missing)} row(s) have no MOS (empty or NaN) and are "
                f"not labels: {first_few(missing)}"]
    return []
