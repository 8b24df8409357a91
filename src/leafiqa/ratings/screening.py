"""From raw ratings to MOS: per-rater consistency checks (hidden gold, planned repeats, spread
of votes), then ITU-R BT.500 subject screening (``sureal``'s ``SR_MOS``) or the ITU-T P.913
maximum-likelihood subject model (``sureal``'s ``MLE``), and a ``name,mos,std,n`` table that
``leaf calibrate --labels`` and ``leaf run`` read as is.

Default ``bt500``: its MOS is a plain mean of the raters it keeps, so ``std`` and ``n`` mean what
a reader expects, and it does not break down with few raters. The MLE model weights raters by
their estimated inconsistency; with a handful of raters that estimate can collapse to zero for
one rater and hand them the whole MOS (seen with sureal 0.9 on 8 simulated raters), so it is
offered (``mle``) but not the default (see benchmarks/bench_rating_screening.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafiqa.data.manifest import FORMULA_STARTS, printable
from leafiqa.data.readers import scale_declaration
from leafiqa.errors import DataError
from leafiqa.ratings.study import Study, StudySettings

METHODS = ("bt500", "mle", "mean")


@dataclass
class Votes:
    """``scores[e, s, r]``: rater ``s``'s ``r``-th vote on image ``e`` (NaN where none);
    ``gold[e]``: the known answer of a hidden gold image, NaN for a study image."""

    names: list[str]
    raters: list[str]
    scores: np.ndarray
    gold: np.ndarray


@dataclass
class RaterCheck:
    rater: str
    votes: int
    gold_pass: float | None = None
    gold_answers: int = 0
    repeat_difference: float | None = None
    spread: float | None = None
    correlation: float | None = None
    reasons: list[str] = field(default_factory=list)
    screened_out: bool = False  # by BT.500

    @property
    def kept(self) -> bool:
        return not self.reasons and not self.screened_out


@dataclass
class Estimate:
    mos: np.ndarray   # per study image (gold rows removed), NaN where no kept vote
    std: np.ndarray
    n: np.ndarray
    names: list[str]
    checks: list[RaterCheck]


def votes_from_study(study: Study) -> Votes:
    images = study.images()
    raters = [rater for rater in study.raters() if rater.done]
    row = {image.id: k for k, image in enumerate(images)}
    column = {rater.id: k for k, rater in enumerate(raters)}
    scores = np.full((len(images), len(raters), 2), np.nan)
    for rating in study.ratings():
        if rating.rater_id in column:
            scores[row[rating.image_id], column[rating.rater_id], int(rating.repeat)] = \
                rating.value
    gold = np.array([np.nan if image.gold is None else image.gold for image in images])
    return Votes([image.name for image in images], [rater.label for rater in raters], scores,
                 gold)


def check_raters(votes: Votes, settings: StudySettings) -> list[RaterCheck]:
    """Crowd checks per rater, in ACR levels: gold answered within the tolerance, repeats that
    agree, and votes that are not all the same button."""
    level = settings.level
    checks = []
    is_gold = ~np.isnan(votes.gold)
    for s, rater in enumerate(votes.raters):
        mine = votes.scores[:, s, :]
        check = RaterCheck(rater, int(np.sum(~np.isnan(mine))))
        first = mine[:, 0]
        answered = is_gold & ~np.isnan(first)
        if answered.any():
            passed = np.abs(first[answered] - votes.gold[answered]) <= (
                settings.gold_tolerance_levels * level + 1e-9)
            check.gold_answers = int(answered.sum())
            check.gold_pass = float(passed.mean())
            if check.gold_pass < settings.min_gold_pass:
                check.reasons.append(f"gold {int(passed.sum())}/{check.gold_answers} within "
                                     f"±{settings.gold_tolerance_levels:g} level")
        both = ~np.isnan(mine[:, 0]) & ~np.isnan(mine[:, 1])
        if both.any():
            check.repeat_difference = float(np.mean(np.abs(mine[both, 0] - mine[both, 1]))
                                             / level)
            if check.repeat_difference > settings.max_repeat_difference:
                check.reasons.append(f"repeats differ by {check.repeat_difference:.2f} levels "
                                     f"on average (limit {settings.max_repeat_difference:g})")
        values = mine[~np.isnan(mine)]
        if values.size >= settings.min_votes_for_spread:
            check.spread = float(np.std(values) / level)
            if check.spread < settings.min_spread:
                check.reasons.append(f"votes spread only {check.spread:.2f} levels "
                                     f"(minimum {settings.min_spread:g})")
        check.correlation = _correlation_with_others(votes, s, settings)
        if check.correlation is not None and check.correlation < settings.min_correlation:
            check.reasons.append(f"votes correlate {check.correlation:.2f} with the others' "
                                 f"mean (minimum {settings.min_correlation:g})")
        checks.append(check)
    return checks


def _correlation_with_others(votes: Votes, rater: int, settings: StudySettings) -> float | None:
    """Pearson r between a rater's votes (repeats averaged) and the mean of every other
    rater on the same study images; None when too few images are shared."""
    if votes.scores.shape[1] < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_rater = np.nanmean(votes.scores, axis=2)[np.isnan(votes.gold)]
        others = np.nanmean(np.delete(per_rater, rater, axis=1), axis=1)
    mine = per_rater[:, rater]
    shared = ~np.isnan(mine) & ~np.isnan(others)
    if shared.sum() < settings.min_shared_for_correlation:
        return None
    if np.std(mine[shared]) == 0 or np.std(others[shared]) == 0:
        return 0.0
    return float(np.corrcoef(mine[shared], others[shared])[0, 1])


def _sureal_dataset(matrix: np.ndarray):  # noqa: ANN202 - sureal's duck-typed dataset
    from types import SimpleNamespace

    rows = range(matrix.shape[0])
    return SimpleNamespace(
        dataset_name="leaf", ref_videos=[{"content_id": e, "content_name": str(e)} for e in rows],
        dis_videos=[{"content_id": e, "asset_id": e,
                     "os": {str(s): float(v) for s, v in enumerate(matrix[e])
                            if not np.isnan(v)}} for e in rows])


def run_sureal(matrix: np.ndarray, method: str) -> tuple[np.ndarray, list[bool]]:
    """(quality per row, rejected per column) from sureal for an images × raters matrix with
    NaN gaps; sureal's progress printing and numpy warnings are kept off the console."""
    try:
        from sureal.dataset_reader import RawDatasetReader
        from sureal.subjective_model import (
            MaximumLikelihoodEstimationModelContentOblivious,
            SubjrejMosModel,
        )
    except ImportError:
        raise DataError("rating export needs the 'sureal' package: pip install "
                        "'leaf-iqa[rate]' (or use --method mean)") from None
    reader = RawDatasetReader(_sureal_dataset(matrix))
    # P.913's model: subject bias and inconsistency (sureal's content-oblivious MLE; the full
    # model's content ambiguity term diverged on simulated 5-level votes)
    model = SubjrejMosModel if method == "bt500" else \
        MaximumLikelihoodEstimationModelContentOblivious
    with warnings.catch_warnings(), np.errstate(all="ignore"), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            result = model(reader).run_modeling()
        except (ValueError, AssertionError, np.linalg.LinAlgError) as error:
            raise DataError(f"--method {method}: sureal's model failed on these ratings "
                            f"({error}); try --method bt500") from None
    observers = [int(o) for o in result.get("observers", range(matrix.shape[1]))]
    rejected = [False] * matrix.shape[1]
    for observer, flag in zip(observers, result.get("observer_rejected",
                                                    [False] * len(observers)), strict=True):
        rejected[observer] = bool(flag)
    return np.asarray(result["quality_scores"], dtype=np.float64), rejected


def estimate(votes: Votes, settings: StudySettings, method: str = "bt500",
             use_checks: bool = True) -> Estimate:
    """MOS of the study images (gold removed): ``mean`` of every vote, or the raters that pass
    the checks screened by ``bt500`` / modelled by ``mle``. A rater's repeats count once (their
    mean)."""
    if method not in METHODS:
        raise DataError(f"--method: '{method}' is not one of {METHODS}")
    checks = check_raters(votes, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_rater = np.nanmean(votes.scores, axis=2)  # images × raters
    study_rows = np.isnan(votes.gold)
    matrix = per_rater[study_rows]
    keep = np.array([not c.reasons for c in checks], dtype=bool) if (
        use_checks and method != "mean") else np.ones(len(checks), dtype=bool)
    quality = None
    rated = ~np.isnan(matrix[:, keep]).all(axis=1) if keep.any() else np.zeros(len(matrix), bool)
    if method != "mean" and keep.sum() >= 2 and rated.sum() >= 2:
        kept_columns = np.flatnonzero(keep)
        sub = matrix[np.ix_(rated, kept_columns)]
        scores, rejected = run_sureal(sub, method)
        for column, flag in zip(kept_columns, rejected, strict=True):
            checks[column].screened_out = flag
            keep[column] = not flag
        if method == "mle":
            quality = np.full(len(matrix), np.nan)
            quality[rated] = scores
    kept = matrix[:, keep]
    n = np.sum(~np.isnan(kept), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mos = np.nanmean(kept, axis=1) if quality is None else quality
        std = np.nanstd(kept, axis=1, ddof=1) if kept.shape[1] else np.full(len(kept), np.nan)
    std = np.where(n >= 2, std, np.nan)
    names = [name for name, row in zip(votes.names, study_rows, strict=True) if row]
    return Estimate(np.asarray(mos, dtype=np.float64), std, n, names, checks)


def label_name(name: str, path: Path, out_folder: Path) -> str:
    """The image's study name if it resolves from the labels file's folder, else its path
    relative to that folder (``leaf calibrate --labels`` reads names from there)."""
    if (out_folder / name).resolve() == path.resolve():
        return name
    try:
        return Path(os.path.relpath(path, out_folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def formula_safe(name: str) -> str:
    """A label name no spreadsheet runs as a formula: one starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return is written as ``./name``, the same file for every
    reader of the label file (a leading apostrophe would name another file)."""
    return "./" + name if name.startswith(FORMULA_STARTS) else name


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_labels_target(study: Study, out: Path) -> None:
    """Before any work: a label file never replaces the study's inputs. ``out`` (links
    followed) must not be a folder, lie in the study's folder (its database and journals), or
    be one of the study's images."""
    out = Path(out)
    shown = f"--out {printable(out)}"
    if out.is_dir():
        raise DataError(f"{shown}: is a folder; give the label file's name (labels.csv)")
    target = out.resolve()
    written = [target, scale_declaration(target)]
    if _same_file(out, study.path):
        raise DataError(f"{shown}: is the study's database {printable(study.path)}; write the "
                        "labels elsewhere (the study's files are never replaced)")
    if any(path.is_relative_to(study.folder.resolve()) for path in written):
        raise DataError(f"{shown}: is inside the study folder {printable(study.folder)}; write "
                        "the labels elsewhere (the study's files are never replaced)")
    for image in study.images():
        if any(path == image.path.resolve() for path in written) or _same_file(out, image.path):
            raise DataError(f"{shown}: is the study's image '{printable(image.name)}'; choose "
                            "another file name")


def _write_atomically(out: Path, text: str) -> None:
    """``text`` into a hidden temporary file beside ``out``, renamed over ``out`` once whole;
    on any failure the temporary file is removed and ``out`` is left as it was."""
    descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.",
                                             suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_labels(study: Study, out: Path, estimate_: Estimate) -> int:
    """Write ``name,mos,std,n`` for every study image with at least one kept vote, and the
    study's scale beside it (``scale_file``); returns the rows written. ``out`` is checked
    first (``check_labels_target``); each file is written whole or not at all."""
    out = Path(out)
    check_labels_target(study, out)
    paths = {image.name: image.path for image in study.images()}
    rows = [(label_name(name, paths[name], out.parent), mos, std, n)
            for name, mos, std, n in zip(estimate_.names, estimate_.mos, estimate_.std,
                                         estimate_.n, strict=True) if n > 0]
    if not rows:
        raise DataError(f"{study.folder}: no ratings from a kept rater yet; nothing to export")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "mos", "std", "n"])
    for name, mos, std, n in rows:
        writer.writerow([formula_safe(printable(name)), f"{mos:.4f}",
                         "" if np.isnan(std) else f"{std:.4f}", int(n)])
    scale = {"scale": study.settings.scale, "range": [study.settings.low, study.settings.high]}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(out, table.getvalue())
        _write_atomically(scale_declaration(out), json.dumps(scale, indent=2) + "\n")
    except OSError as error:
        raise DataError(f"--out {printable(out)}: cannot write it "
                        f"({error.strerror or error})") from None
    return len(rows)


def describe_checks(checks: Sequence[RaterCheck]) -> list[str]:
    lines = []
    for check in checks:
        parts = [f"{check.votes} votes"]
        if check.gold_pass is not None:
            parts.append(f"gold {check.gold_pass:.0%} of {check.gold_answers}")
        if check.repeat_difference is not None:
            parts.append(f"repeat diff {check.repeat_difference:.2f}")
        if check.spread is not None:
            parts.append(f"spread {check.spread:.2f}")
        if check.correlation is not None:
            parts.append(f"r {check.correlation:.2f}")
        verdict = "kept" if check.kept else "excluded: " + "; ".join(
            check.reasons + (["BT.500 screening"] if check.screened_out else []))
        lines.append(f"{check.rater}: {', '.join(parts)} → {verdict}")
    return lines
