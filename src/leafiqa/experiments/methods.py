"""The methods a run or a bench compares — LEAF, its ablations and the baselines — as data.

A ``Method`` has a name, says whether it needs labels, and runs on a workspace with a set of
labelled training rows and a seed. LEAF's variants are rows of ``LEAF_VARIANTS`` (changes to the
distillation config and the calibration), like pyiqa's model configs; ``METHODS`` holds every
method by name. Distillation does not depend on labels, so a workspace keeps each distilled head
(per distillation config) and every label budget reuses it — except for a teacher ensemble,
whose member weights the labels refine (``judgments.ensemble``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from leafiqa.calibration.estimate import (
    AccuracyEstimate,
    FoldPredictions,
    cross_validate,
    estimable,
    estimate_from_folds,
)
from leafiqa.calibration.mapping import ScoreMap, fit_score_map
from leafiqa.calibration.prior import PriorCalibration, calibrate_prior
from leafiqa.data.manifest import DataError
from leafiqa.errors import ConfigError
from leafiqa.experiments.labels_only import train_on_labels
from leafiqa.experiments.workspace import Workspace, ensemble_view
from leafiqa.student.distill import DistillConfig, distill_head
from leafiqa.student.head import QualityHead
from leafiqa.student.ridge import fit_ridge_loo
from leafiqa.teachers.protocol import log_odds

#: an ensemble re-weighs its members by the labels from this many labels on
MIN_LABELS_FOR_ENSEMBLE_WEIGHTS = 8


@dataclass
class MethodResult:
    method: str
    predictions: np.ndarray  # on the test rows
    calibration: PriorCalibration
    head: QualityHead | None = None
    seconds: float = 0.0
    estimate: AccuracyEstimate | None = None  # expected accuracy, from the labels alone


@dataclass(frozen=True)
class Method:
    name: str
    needs_labels: bool
    run: Callable[[Workspace, np.ndarray, int], MethodResult]  # (workspace, label rows, seed)


@dataclass(frozen=True)
class LeafVariant:
    """LEAF with changes to its distillation config and calibration (an ablation row)."""

    name: str
    distill: dict = field(default_factory=dict)
    correct: bool = True  # calibration: the labels' ridge correction on the features
    ensemble_weights: str = "agreement"  # ensembles: "agreement" (default) or "equal"


LEAF_VARIANTS: tuple[LeafVariant, ...] = (
    LeafVariant("LEAF"),
    LeafVariant("LEAF no reliability weighting", {"use_reliability": False}),
    LeafVariant("LEAF P(good) target", {"target": "score"}),
    LeafVariant("LEAF log-odds + P(good) target", {"target": "blend"}),
    LeafVariant("LEAF no correction (map only)", correct=False),
    LeafVariant("LEAF MLP head, joint point + pair loss", {"head": "mlp"}),
    LeafVariant("LEAF MLP head, point-wise only", {"head": "mlp", "pair_weight": 0.0}),
    LeafVariant("LEAF MLP head, pair-wise only", {"head": "mlp", "point_weight": 0.0}),
    LeafVariant("LEAF equal ensemble weights", ensemble_weights="equal"),
)


def _check_usable(ws: Workspace, rows: np.ndarray) -> None:
    if np.isnan(ws.mos[rows]).any():
        raise DataError(f"{ws.manifest.source}: some labelled images have no MOS")


def distilled_head(ws: Workspace, config: DistillConfig, label_rows: np.ndarray | None = None,
                   ensemble_weights: str = "agreement") -> QualityHead:
    """The head distilled from the workspace's teacher with ``config``, computed once per
    workspace and config. For an ensemble with enough ``label_rows`` the members are first
    re-weighted by their agreement with those labels."""
    view = ws.teacher
    # the closed-form ridge head has no randomness: one per workspace whatever the seed
    key: tuple = (repr(dataclasses.replace(config, seed=0) if config.head == "ridge"
                       else config), ensemble_weights)
    labelled = None
    if ws.teacher.members and label_rows is not None and (
            label_rows.size >= MIN_LABELS_FOR_ENSEMBLE_WEIGHTS) and ensemble_weights != "equal":
        rows = ws.train_rows[label_rows]
        labelled = {ws.keys[i]: float(ws.mos[i]) for i in rows}
        key += (np.asarray(label_rows).tobytes(), ws.mos[rows].tobytes())
    cache = ws.__dict__.setdefault("_heads", {})
    if key not in cache:
        if ws.teacher.members and (labelled or ensemble_weights == "equal"):
            view = ensemble_view(ws.teacher.members, ws.keys,
                                 [ws.keys[i] for i in ws.distill_rows],
                                 ws.config.teacher.pairs_per_image, labelled,
                                 equal=ensemble_weights == "equal")
        targets = ws.targets(ws.distill_rows, view, config.target)
        cache[key] = distill_head(ws.distill_source, targets, config, ws.scaler)
    return cache[key]


def run_leaf(ws: Workspace, label_rows: np.ndarray, seed: int = 0,
             variant: LeafVariant = LEAF_VARIANTS[0],
             distilled: QualityHead | None = None, *, estimate: bool = False,
             weights: np.ndarray | None = None) -> MethodResult:
    """Distil on the training images' teacher judgments, then calibrate on the labelled ones:
    the student's score mapped onto MOS plus the labels' correction (``calibration.prior``).
    ``estimate``: also estimate the accuracy from the labels alone (``calibration.estimate``;
    ``weights``: what each label stands for when they were not drawn at random)."""
    start = time.time()
    config = dataclasses.replace(ws.config.distill, seed=seed, **variant.distill)
    head = distilled or distilled_head(ws, config, label_rows, variant.ensemble_weights)
    scores = ws.predict(head)
    calibration = PriorCalibration(ScoreMap())
    if label_rows.size:
        labelled = ws.train_rows[label_rows]
        _check_usable(ws, labelled)
        calibration = calibrate_prior(scores[labelled], ws.bases(label_rows), ws.mos[labelled],
                                      correct=variant.correct,
                                      forms=ws.config.calibration.forms,
                                      min_gain_se=ws.config.calibration.min_gain_se,
                                      pool=ws.pool_sample(scores))
    predictions = calibration(scores[ws.test_rows], ws.test_features)
    seconds = time.time() - start
    folds = estimate_folds(ws, head, scores, label_rows, seed, variant.correct) if (
        estimate) else None
    expected = None if folds is None else estimate_from_folds(folds, weights, seed=seed,
                                                              target=ws.protocol)
    return MethodResult(variant.name, predictions, calibration, head, seconds, expected)


def estimate_folds(ws: Workspace, head: QualityHead, scores: np.ndarray, label_rows: np.ndarray,
                   seed: int = 0, correct: bool = True) -> FoldPredictions | None:
    """The folds of LEAF's accuracy estimate (``calibration.estimate``) for the calibration
    ``run_leaf`` fits on ``label_rows``: refitted on the labelled images' in-sample ``scores``,
    each held-out label predicted as an image of what the estimate speaks for
    (``target_scores``); re-weight them with ``estimate_from_folds``. None where the labels give
    no estimate."""
    labelled = ws.train_rows[label_rows]
    if not estimable(ws.mos[labelled]):
        return None
    target = target_scores(head, scores, ws)
    calibration = ws.config.calibration
    noise = None if ws.label_noise is None else ws.label_noise[labelled]
    return cross_validate(target[labelled], ws.rows_features(labelled), ws.scalers,
                          ws.mos[labelled], correct=correct, forms=calibration.forms,
                          min_gain_se=calibration.min_gain_se, seed=seed,
                          pool=ws.pool_sample(scores), fit_scores=scores[labelled],
                          label_noise=noise)


def target_scores(head: QualityHead, scores: np.ndarray, ws: Workspace) -> np.ndarray:
    """Every image's student score as the images the estimate speaks for get it: under the
    "pool" protocol those are the pool's own images, distilled on like the labelled ones (their
    in-sample scores); under "new", images the student never saw (``unseen_scores``)."""
    return scores if ws.protocol == "pool" else unseen_scores(head, scores, ws)


def unseen_scores(head: QualityHead, scores: np.ndarray, ws: Workspace) -> np.ndarray:
    """The student's scores as images it never saw get them: the training images (labelled
    ones among them) were distilled on, so their in-sample scores agree with the teacher, and
    through it with MOS, more than a new image's do (docs/results/estimate.md). An estimate
    from those scores flatters; the ridge head's exact leave-one-out scores of the training
    images do not. The MLP head has none: its in-sample scores are used."""
    unseen = getattr(head, "out_of_sample", None)
    if unseen is None or len(unseen) != ws.distill_rows.size:
        return scores
    scores = np.array(scores, dtype=np.float64)
    scores[ws.distill_rows] = unseen
    return scores


def run_labels_only(ws: Workspace, label_rows: np.ndarray, seed: int = 0) -> MethodResult:
    """Baseline: the same student head trained from scratch on the labels alone (its PCA
    from the training images, read chunk by chunk)."""
    start = time.time()
    labelled = ws.train_rows[label_rows]
    mos = ws.mos[labelled]
    calibration_config = dataclasses.replace(ws.config.calibration, seed=seed)
    head = train_on_labels(ws.feature_source.subset(ws.train_rows), label_rows, mos,
                           calibration_config, ws.config.distill.hidden,
                           ws.config.distill.dropout)
    calibration = PriorCalibration(fit_score_map(head.predict(ws.rows_features(labelled)), mos))
    predictions = calibration.score_map(head.predict(ws.test_features))
    return MethodResult("student on labels alone", predictions, calibration, head,
                        time.time() - start)


def teacher_log_odds(ws: Workspace) -> np.ndarray:
    return np.array([log_odds(s) if np.isfinite(s) else np.nan for s in ws.teacher_scores])


def run_teacher_alone(ws: Workspace, label_rows: np.ndarray, seed: int = 0,
                      scores: np.ndarray | None = None,
                      name: str = "teacher alone + logistic") -> MethodResult:
    """A teacher's log-odds (default: the run's teacher) mapped onto MOS with the labels."""
    start = time.time()
    scores = teacher_log_odds(ws) if scores is None else scores
    labelled = ws.train_rows[label_rows]
    keep = ~np.isnan(scores[labelled])
    score_map = fit_score_map(scores[labelled][keep], ws.mos[labelled][keep]) if (
        label_rows.size) else ScoreMap()
    test_scores = scores[ws.test_rows]
    if np.isnan(test_scores).any():
        raise DataError("the teacher has no judgment for some test images")
    return MethodResult(name, score_map(test_scores), PriorCalibration(score_map),
                        seconds=time.time() - start)


def run_linear_probe(ws: Workspace, label_rows: np.ndarray, seed: int = 0) -> MethodResult:
    """Baseline: ridge regression from the frozen features to MOS, penalty by exact
    leave-one-out, on the labels alone."""
    start = time.time()
    labelled = ws.train_rows[label_rows]
    model = fit_ridge_loo(ws.basis(label_rows), ws.mos[labelled])
    return MethodResult("linear probe (ridge)", model(ws.test_features),
                        PriorCalibration(ScoreMap()), seconds=time.time() - start)


def _leaf_method(variant: LeafVariant) -> Method:
    return Method(variant.name, needs_labels=False, run=partial(_run_variant, variant))


def _run_variant(variant: LeafVariant, ws: Workspace, label_rows: np.ndarray,
                 seed: int) -> MethodResult:
    return run_leaf(ws, label_rows, seed, variant)


BASELINES: tuple[Method, ...] = (
    Method("student on labels alone", needs_labels=True, run=run_labels_only),
    Method("teacher alone + logistic", needs_labels=False, run=run_teacher_alone),
    Method("linear probe (ridge)", needs_labels=True, run=run_linear_probe),
)
METHODS: dict[str, Method] = {m.name: m for m in (*map(_leaf_method, LEAF_VARIANTS),
                                                  *BASELINES)}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}'; choose from {sorted(METHODS)}") from None
