"""``leaf calibrate``: a student mapped onto the MOS scale with a few labels
(``api.calibrate_labels``), and what it kept, expects and would gain from more labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leafiqa.api import plural
from leafiqa.cli.base import note
from leafiqa.cli.options import (
    CacheOption,
    Kind,
    KindOption,
    SeedOption,
    Selection,
    SplitOption,
    TeacherIdOption,
)
from leafiqa.defaults import DEFAULT_SPLIT


def calibrate(
    model_path: Annotated[Path, typer.Argument(help="a distilled model file")],
    labels: Annotated[str, typer.Option(help="images with MOS (dataset folder or CSV)")],
    pool: Annotated[str | None, typer.Option(
        help="every image the model is for (folder or CSV), the labelled ones among them: the "
             "pool the selection's weights and the accuracy estimate speak for (default: the "
             "labelled images alone)")] = None,
    budget: Annotated[float, typer.Option(
        help="labels to use: fraction (≤1) or count (default: every label)")] = 1.0,
    selection: Annotated[Selection, typer.Option(
        help="how the labels were (or are to be) chosen; all but random need --store. With "
             "labels `leaf select` chose, name its design: the estimate is re-weighted for it "
             "over --pool")] = Selection.random,
    seed: SeedOption = 0,
    store: Annotated[Path | None, typer.Option(
        help="judgment store (for a --selection but random)")] = None,
    teacher_id: TeacherIdOption = None,
    out: Annotated[Path | None, typer.Option(
        help="output model file (default: <model>-calibrated)")] = None,
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    cache: CacheOption = None,
    next_labels: Annotated[int | None, typer.Option(
        "--next", min=1, help="say what this many more labels are expected to add (default: as "
                              "many as there are)")] = None,
) -> None:
    """Map the student onto the MOS scale with a few labels (4-parameter logistic) and let the
    labels correct it where leave-one-out says they should."""
    from leafiqa.api import calibrate_labels
    from leafiqa.calibration.estimate import LearningCurve
    from leafiqa.experiments.pipeline import format_expected
    from leafiqa.model.modelinfo import read_info

    path = calibrate_labels(model_path, labels, pool=pool, kind=kind.value, split=split,
                            budget=budget, selection=selection.value, seed=seed, store=store,
                            teacher_id=teacher_id, out=out, cache_dir=cache,
                            next_labels=next_labels)
    typer.echo(f"wrote {path}")
    calibrated = read_info(path)
    notes = calibrated.notes
    typer.echo(describe_calibration(notes, Path(labels), calibrated.output_map.kind != "none"))
    if notes.get("expected_accuracy"):
        typer.echo(format_expected(notes["expected_accuracy"]))
    if notes.get("learning_curve"):
        typer.echo("worth more labels? " + LearningCurve(**notes["learning_curve"]).summary())
    if pool and selection is Selection.random:
        note("the labels are read as a random draw of the pool; if `leaf select` chose them, "
             "name its design (--selection variance --store …) or the estimate flatters")


def describe_calibration(notes: dict, labels: Path, logistic: bool) -> str:
    """``leaf calibrate``'s account of what it did: the labels it used (per round when the
    label file has them) and the form it kept, with its penalty."""
    from leafiqa.calibration.prior import describe_correction
    from leafiqa.labelling.rounds import round_counts

    rounds = round_counts(labels) if labels.is_file() else {}
    per_round = (" (" + ", ".join(f"{name or 'no round'}: {count}" for name, count
                                  in rounds.items()) + ")") if len(rounds) > 1 else ""
    kept = describe_correction(notes.get("correction_form", ""),
                               float(notes.get("correction_alpha", float("inf"))),
                               notes.get("correction_prior", ""),
                               notes.get("correction_reason", ""), logistic)
    return (f"calibrated on {plural(int(notes.get('labels', 0)), 'label')} of {labels}"
            f"{per_round}, selection {notes.get('selection', 'random')}: kept {kept}")
