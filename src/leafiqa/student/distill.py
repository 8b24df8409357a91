"""Joint distillation: fit the student's head to a teacher's point-wise and pair-wise judgments.

L = λ_point · Σ w_i (s_i − t_i)² / Σ w_i + λ_pair · Σ w_ij BCE(σ((s_i − s_j)/τ), p_ij) / Σ w_ij

with t_i the teacher's score as log-odds (``log_odds``: logit_good − logit_poor for a two-level
teacher, the logit of the expected score for K levels), standardised over the images, p_ij the
teacher's P(i better than j), and weights w = floor + (1 − floor) · reliability (w = 1 without
reliability weighting). A validation slice of the images (never the test split) stops training
early.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from leafiqa.config import DistillConfig
from leafiqa.errors import ConfigError, DataError
from leafiqa.student.head import DistillFit, QualityHead
from leafiqa.student.losses import pair_loss, point_loss
from leafiqa.student.ridge import (
    FeatureScaler,
    FeatureSource,
    RidgeFit,
    fit_ridge_loo,
    ridge_basis,
)
from leafiqa.teachers.protocol import PairJudgment, PointJudgment, log_odds

TARGETS = ("logit", "score", "blend")


@dataclass
class TeacherTargets:
    """Teacher judgments as arrays indexed by row of a feature matrix."""

    point_index: np.ndarray
    point_target: np.ndarray
    point_reliability: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_prob: np.ndarray
    pair_reliability: np.ndarray
    teacher_ids: list[str] = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return int(self.point_index.size)

    @property
    def n_pairs(self) -> int:
        return int(self.pair_a.size)

    def restricted(self, rows: np.ndarray) -> TeacherTargets:
        """Only judgments whose images are all in ``rows``."""
        keep = np.zeros(max(int(rows.max(initial=0)) + 1, self._max_row() + 1), dtype=bool)
        keep[rows] = True
        points = keep[self.point_index]
        pairs = keep[self.pair_a] & keep[self.pair_b]
        return TeacherTargets(
            self.point_index[points], self.point_target[points], self.point_reliability[points],
            self.pair_a[pairs], self.pair_b[pairs], self.pair_prob[pairs],
            self.pair_reliability[pairs], list(self.teacher_ids),
        )

    def _max_row(self) -> int:
        values = [a.max(initial=0) for a in (self.point_index, self.pair_a, self.pair_b)]
        return int(max(values))


def rank_agreement(scores: np.ndarray, targets: np.ndarray) -> float:
    """Spearman correlation (NaN for fewer than 3 values or a constant side)."""
    if scores.size < 3 or np.ptp(scores) == 0 or np.ptp(targets) == 0:
        return float("nan")
    return float(spearmanr(scores, targets).statistic)


def build_targets(
    keys: Sequence[str],
    points: Mapping[str, PointJudgment],
    pairs: Sequence[PairJudgment] = (),
    target: str = "logit",
) -> TeacherTargets:
    """Align judgments with rows (``keys[i]`` is row i). Point scores (as log-odds unless
    ``target="score"``) are standardised over the judged images so the student learns the
    teacher's ordering and spread, not its raw scale."""
    if target not in TARGETS:
        raise ConfigError(f"distill.target: unknown target '{target}'; choose from {TARGETS}")
    row_of: dict[str, int] = {}
    for row, key in enumerate(keys):
        row_of.setdefault(key, row)
    judged = [(row_of[k], p) for k, p in points.items() if k in row_of]
    index = np.array([r for r, _ in judged], dtype=np.int64)
    scores = np.array([p.score if target == "score" else log_odds(p.score)
                       for _, p in judged], dtype=np.float64)
    if target == "blend" and scores.size:
        # half log-odds (order and resolution), half the [0, 1] score (robust to confident
        # extremes, which on camera photos are not accuracy): docs/results/label-budget.md
        raw = np.array([p.score for _, p in judged], dtype=np.float64)
        scores = (scores - scores.mean()) / (scores.std() or 1.0) + (raw - raw.mean()) / (
            raw.std() or 1.0)
    standardised = (scores - scores.mean()) / (scores.std() or 1.0) if scores.size else scores
    pair_rows = [(row_of[p.key_a], row_of[p.key_b], p) for p in pairs
                 if p.key_a in row_of and p.key_b in row_of]
    return TeacherTargets(
        point_index=index,
        point_target=standardised.astype(np.float32),
        point_reliability=np.array([p.reliability for _, p in judged], dtype=np.float32),
        pair_a=np.array([a for a, _, _ in pair_rows], dtype=np.int64),
        pair_b=np.array([b for _, b, _ in pair_rows], dtype=np.int64),
        pair_prob=np.array([p.prob_a_better for _, _, p in pair_rows], dtype=np.float32),
        pair_reliability=np.array([p.reliability for _, _, p in pair_rows], dtype=np.float32),
        teacher_ids=sorted({p.teacher_id for _, p in judged}),
    )


def judgment_weights(reliability: np.ndarray, config: DistillConfig) -> torch.Tensor:
    if not config.use_reliability:
        return torch.ones(reliability.size)
    floor = config.reliability_floor
    return torch.as_tensor(floor + (1.0 - floor) * np.clip(reliability, 0.0, 1.0),
                           dtype=torch.float32)


class DistillationLoss:
    """The joint loss over one set of judgments, evaluated on all-image scores."""

    def __init__(self, targets: TeacherTargets, config: DistillConfig) -> None:
        self.config = config
        self.point_index = torch.as_tensor(targets.point_index)
        self.point_target = torch.as_tensor(targets.point_target)
        self.point_w = judgment_weights(targets.point_reliability, config)
        self.pair_a = torch.as_tensor(targets.pair_a)
        self.pair_b = torch.as_tensor(targets.pair_b)
        self.pair_prob = torch.as_tensor(targets.pair_prob)
        self.pair_w = judgment_weights(targets.pair_reliability, config)

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        config = self.config
        total = scores.new_zeros(())
        if config.point_weight > 0 and self.point_index.numel():
            total = total + config.point_weight * point_loss(
                scores[self.point_index], self.point_target, self.point_w)
        if config.pair_weight > 0 and self.pair_a.numel():
            total = total + config.pair_weight * pair_loss(
                scores[self.pair_a], scores[self.pair_b], self.pair_prob, self.pair_w,
                config.temperature, config.pair_loss)
        return total


def split_validation(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 7919)
    order = rng.permutation(n_rows)
    n_val = int(round(n_rows * fraction)) if fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_loop(
    parameters: Sequence[torch.nn.Parameter],
    step_loss: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    validation: Callable[[], float | None] | None = None,
    eval_every: int = 10,
    patience: int = 6,
    min_lr: float = 0.0,
    best: tuple[float, object] | None = None,
) -> list[float]:
    """The one training loop of the student (the head on cached features, ``train_head``; the
    backbone's tail with the head, ``tail_tuning``): AdamW with cosine decay to ``min_lr`` over
    ``steps``; ``step_loss(step)`` is the loss of step ``step`` (the whole set or a batch).
    Every ``eval_every`` steps ``validation()`` gives the validation loss (None: nothing to
    validate on); the best ``snapshot()`` so far is kept — ``best`` can seed it with the state
    before training — training stops after ``patience`` evaluations without improvement, and
    the best state is ``restore``d. Returns the validation losses."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1),
                                                          eta_min=min_lr)
    history: list[float] = []
    best_value, best_state = best or (float("inf"), None)
    bad_evals = 0
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(step)
        loss.backward()
        optimizer.step()
        schedule.step()
        if validation is not None and (step + 1) % eval_every == 0:
            value = validation()
            if value is None:
                continue
            history.append(value)
            if value < best_value - 1e-5:
                best_value, best_state = value, snapshot()
                bad_evals = 0
            else:
                bad_evals += 1
                if bad_evals >= patience:
                    break
    if best_state is not None:
        restore(best_state)
    return history


def train_head(
    head: QualityHead,
    features: np.ndarray,
    objective,  # noqa: ANN001 - callable(scores over all rows) -> loss
    validation=None,  # noqa: ANN001 - optional callable for early stopping
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    eval_every: int = 10,
    patience: int = 6,
    seed: int = 0,
    extra_parameters: Sequence[torch.nn.Parameter] = (),
    embedded: bool = False,
) -> list[float]:
    """Full-batch ``train_loop`` of the head's MLP (and ``extra_parameters``) on cached
    features (``embedded``: already standardised and projected by the head, e.g. chunk by
    chunk for a pool too big to hold); keeps the best validation state."""
    torch.manual_seed(seed)
    with torch.no_grad():
        x = torch.as_tensor(features, dtype=torch.float32)
        x = x if embedded else head.embed(x)

    def step_loss(step: int) -> torch.Tensor:
        head.train()
        return objective(head.score_embedded(x))

    def validate() -> float:
        head.eval()
        with torch.no_grad():
            return float(validation(head.score_embedded(x)))

    def snapshot() -> tuple[dict, list[torch.Tensor]]:
        return copy.deepcopy(head.state_dict()), [p.detach().clone() for p in extra_parameters]

    def restore(state: tuple[dict, list[torch.Tensor]]) -> None:
        head.load_state_dict(state[0])
        with torch.no_grad():
            for parameter, value in zip(extra_parameters, state[1], strict=True):
                parameter.copy_(value)

    history = train_loop([*head.net.parameters(), *extra_parameters], step_loss, steps=steps,
                         lr=lr, weight_decay=weight_decay, snapshot=snapshot, restore=restore,
                         validation=validate if validation is not None else None,
                         eval_every=eval_every, patience=patience)
    head.eval()
    return history


def ridge_head(features: np.ndarray | FeatureSource, targets: TeacherTargets,
               config: DistillConfig | None = None,
               scaler: FeatureScaler | None = None) -> QualityHead:
    """Point-wise distillation in closed form: a ridge regression from the features to the
    teacher's standardised log-odds, each judgment weighted by its reliability, the penalty
    chosen by exact leave-one-out, on the features as ``scaler`` standardises them (default:
    each feature to unit variance). Returned as a ``QualityHead`` (a one-component projection
    and an affine output) so model files and ONNX carry it like any head.

    The ridge takes the form the shape asks for (``ridge.ridge_basis``): with more judged
    images than features it is solved in the primal, streaming the rows in chunks, so
    ``features`` may be a ``FeatureSource`` over a pool too big for memory."""
    config = config or DistillConfig()
    if targets.n_points < 3:
        raise DataError("the ridge head needs point-wise judgments of at least 3 images")
    rows = targets.point_index
    weights = judgment_weights(targets.point_reliability, config).numpy()
    source = (features.subset(rows) if isinstance(features, FeatureSource)
              else FeatureSource.of(features, rows))
    fit = fit_ridge_loo(ridge_basis(source, scaler, weights), targets.point_target)
    head = QualityHead(source.n_features, hidden=0, dropout=0.0, components=1)
    with torch.no_grad():
        head.feature_mean.zero_()
        head.projection.copy_(torch.as_tensor(fit.coef[:, None], dtype=torch.float32))
        linear: Any = head.net[-1]  # an nn.Linear
        linear.weight.fill_(1.0)
        linear.bias.fill_(fit.intercept)
    scores = features.map(fit) if isinstance(features, FeatureSource) else fit(features)
    head.out_of_sample = out_of_sample_scores(fit, scores, rows)
    loo = np.asarray(fit.loo_predictions, dtype=np.float64)
    known = np.isfinite(loo)
    head.fit = DistillFit(
        images=int(scores.size), point_judgments=targets.n_points,
        pair_judgments=targets.n_pairs, head="ridge", penalty=float(fit.alpha),
        in_sample=rank_agreement(scores[rows], targets.point_target),
        out_of_sample=rank_agreement(loo[known], targets.point_target[known]))
    return head.eval()


def out_of_sample_scores(fit: RidgeFit, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ridge's ``scores`` of every row of the features, each row it was fitted on
    predicted without its own judgment(s) — the exact leave-one-out; rows without a judgment
    (or of weight 0) keep the fit's score, which never saw them."""
    loo = np.asarray(fit.loo_predictions, dtype=np.float64)
    known = np.isfinite(loo)
    # an image judged more than once: the mean of its judgments' leave-one-out scores
    total = np.bincount(rows[known], loo[known], minlength=scores.size)
    count = np.bincount(rows[known], minlength=scores.size)
    return np.where(count > 0, total / np.maximum(count, 1), scores)


def distill_head(
    features: np.ndarray | FeatureSource, targets: TeacherTargets,
    config: DistillConfig | None = None, scaler: FeatureScaler | None = None,
) -> QualityHead:
    """A head trained on the teacher's judgments of the rows of ``features``: the closed-form
    ridge head (``config.head == "ridge"``, point-wise judgments; features standardised by
    ``scaler``; a ``FeatureSource`` is streamed) or the MLP head trained on the joint
    point-wise + pair-wise loss (which gathers a source's rows in memory)."""
    config = config or DistillConfig()
    if targets.n_points == 0 and targets.n_pairs == 0:
        raise DataError("no teacher judgments to distil from")
    if config.head == "ridge" and config.point_weight > 0:
        return ridge_head(features, targets, config, scaler)
    if isinstance(features, FeatureSource):
        features = features.array()
    torch.manual_seed(config.seed)
    head = QualityHead(features.shape[1], config.hidden, config.dropout)
    head.set_normalisation(features)
    train_rows, val_rows = split_validation(features.shape[0], config.val_fraction, config.seed)
    train_loss = DistillationLoss(targets.restricted(train_rows), config)
    val_loss = DistillationLoss(targets.restricted(val_rows), config) if val_rows.size else None
    train_head(head, features, train_loss, val_loss, steps=config.steps, lr=config.lr,
               weight_decay=config.weight_decay, eval_every=config.eval_every,
               patience=config.patience, seed=config.seed)
    head.fit = mlp_fit(head, features, targets, val_rows)
    return head


def mlp_fit(head: QualityHead, features: np.ndarray, targets: TeacherTargets,
            val_rows: np.ndarray) -> DistillFit:
    """The MLP head's ``DistillFit``: its point-wise agreement with the teacher on the images
    it trained on and on the validation slice."""
    scores = head.predict(features).astype(np.float64)
    held = np.isin(targets.point_index, val_rows)
    index, target = targets.point_index, targets.point_target
    return DistillFit(
        images=int(features.shape[0]), point_judgments=targets.n_points,
        pair_judgments=targets.n_pairs, head="mlp", penalty=None,
        in_sample=rank_agreement(scores[index[~held]], target[~held]),
        out_of_sample=rank_agreement(scores[index[held]], target[held]) if held.any() else None)
