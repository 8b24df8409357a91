"""``leaf select``: which images people should rate next, from the teacher's stored judgments
and the student's features (``labelling.designs``), given the ones already rated."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leafiqa.data.manifest import DataError, Manifest
from leafiqa.data.splits import training_images
from leafiqa.defaults import DEFAULT_BACKBONE, DEFAULT_INPUT_SIZE, cache_folder
from leafiqa.errors import ConfigError
from leafiqa.judgments.runner import hash_manifest
from leafiqa.labelling.designs import embed, select_order
from leafiqa.student.features import FeatureExtractor

#: designs that read the teacher's judgments / the student's features
NEEDS_TEACHER = ("spread", "kcenter", "variance")
NEEDS_FEATURES = ("kcenter", "variance")


@dataclass
class NextImages:
    """The images to rate next, in the order to ask."""

    names: list[str]
    paths: list[str]
    strategy: str
    already_rated: int
    pool: int

    def write(self, out: Path) -> Path:
        """CSV (``order,name,path``) or, for a ``.json`` path, a JSON object."""
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps({
                "selection": self.strategy, "already_rated": self.already_rated,
                "pool": self.pool,
                "images": [{"order": k + 1, "name": n, "path": p}
                           for k, (n, p) in enumerate(zip(self.names, self.paths, strict=True))]},
                indent=2))
            return out
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["order", "name", "path"])
            for k, (name, path) in enumerate(zip(self.names, self.paths, strict=True)):
                writer.writerow([k + 1, name, path])
        return out


def rated_names(labels: Path) -> list[str]:
    """The ``name`` column of a CSV of images already rated (a ``leaf ratings export`` file or
    any CSV with a ``name`` column)."""
    try:
        with labels.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "name" not in reader.fieldnames:
                raise DataError(f"{labels}: no 'name' column (a CSV of rated images: name,mos)")
            # `leaf ratings export` writes a formula-like name as ./name (the same file)
            names = [row["name"].strip() for row in reader if row["name"] and row["name"].strip()]
            return [name[2:] if name.startswith("./") else name for name in names]
    except UnicodeDecodeError:
        raise DataError(f"{labels}: not a text CSV file") from None


def excluded_names(source: Path, manifest: Manifest) -> set[str]:
    """The names of ``manifest``'s images that ``source`` keeps out of selection: every name of
    a text list (one a line) or of a CSV's ``name`` (``path``, ``image``) column — a gold file,
    a study's list — or, for a CSV with a ``split`` column, the rows whose split is test.
    Matched by name or by file (names relative to the list's folder); a name matching no image
    is an error naming it."""
    if not source.is_file():
        raise DataError(f"{source}: no such file (--exclude: a list of names or a CSV)")
    try:
        if source.suffix.lower() == ".csv":
            with source.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                column = next((c for c in ("name", "path", "image") if c in columns), None)
                if column is None:
                    raise DataError(f"{source}: no 'name' column (--exclude: a CSV with a name "
                                    "column, or a list of names one a line)")
                listed = [row[column].strip() for row in reader if (row[column] or "").strip()
                          and ("split" not in columns
                               or (row["split"] or "").strip().lower() in ("test", "testing"))]
        else:
            listed = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise DataError(f"{source}: not a text file") from None
    by_name = {item.name: item.name for item in manifest}
    by_file = {item.path.resolve(): item.name for item in manifest}
    names, unknown = set(), []
    for entry in dict.fromkeys(listed):
        path = Path(entry) if Path(entry).is_absolute() else source.parent / entry
        name = by_name.get(entry) or by_file.get(path.resolve())
        if name is None:
            unknown.append(entry)
        else:
            names.add(name)
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" … ({len(unknown)} in all)"
                                           if len(unknown) > 10 else "")
        raise DataError(f"{source}: images not in {manifest.source}: {shown}")
    return names


def teacher_scores(store: Path, teacher_id: str | None, keys: list[str]) -> np.ndarray:
    """The teacher's point score (P(good)) of every image; NaN where it has none."""
    from leafiqa.judgments.store import JudgmentStore

    if not store.is_file():
        raise DataError(f"{store}: no such judgment store (run `leaf teach` first)")
    with JudgmentStore(store) as opened:
        teacher_id = opened.resolve_teacher(teacher_id)
        points = opened.points(teacher_id, keys=keys)
    return np.array([points[k].score if k in points else np.nan for k in keys])


def select_next(
    manifest: Manifest,
    n: int,
    *,
    strategy: str = "variance",
    labels: Path | None = None,
    exclude: Sequence[Path] = (),
    store: Path | None = None,
    teacher_id: str | None = None,
    backbone: str = DEFAULT_BACKBONE,
    input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> NextImages:
    """The ``n`` images of ``manifest``'s training part (every image without a split) to rate
    next, given the ones named in ``labels``; the images ``exclude`` names (gold images, a test
    set: ``excluded_names``) are never candidates."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1 (got {n})")
    pool = training_images(manifest)
    left_out = set().union(*(excluded_names(Path(path), manifest) for path in exclude))
    if left_out:
        pool = pool.subset([item for item in pool if item.name not in left_out])
        if not len(pool):
            raise DataError(f"--exclude leaves no image of {manifest.source} to choose from")
    names = [item.name for item in pool]
    index = {name: i for i, name in enumerate(names)}
    done: list[int] = []
    if labels is not None:
        rated = rated_names(labels)
        missing = [name for name in dict.fromkeys(rated) if name not in index]
        if missing:
            shown = ", ".join(missing[:10]) + (f" … ({len(missing)} in all)"
                                               if len(missing) > 10 else "")
            raise DataError(f"{labels}: images not among the candidates of {pool.source}: "
                            f"{shown}")
        done = sorted({index[name] for name in rated})
    keys = hash_manifest(pool, progress=False) if strategy in NEEDS_TEACHER else []
    scores = None
    if strategy in NEEDS_TEACHER:
        if store is None:
            raise ConfigError(f"selection '{strategy}' needs the teacher's judgments (--store)")
        scores = teacher_scores(Path(store), teacher_id, keys)
        unjudged = [names[i] for i in np.flatnonzero(np.isnan(scores))]
        if unjudged:
            raise DataError(f"{store}: the teacher has no judgment for {len(unjudged)} "
                            f"candidate(s), e.g. {', '.join(unjudged[:5])} (run `leaf teach`)")
    embedding = None
    if strategy in NEEDS_FEATURES:  # the pool's features stay on disk: the PCA streams them
        extractor = FeatureExtractor(backbone, input_size, cache_folder(cache_dir))
        extractor.fill(pool, keys)
        embedding = embed(extractor.source(keys))
    order = select_order(len(pool), n, strategy=strategy, teacher_scores=scores,
                         embedding=embedding, labelled=done, seed=seed)
    return NextImages([names[i] for i in order], [str(pool.items[i].path) for i in order],
                      strategy, len(done), len(pool))
