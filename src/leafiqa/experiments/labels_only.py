"""The "student on labels alone" baseline: the student's head trained on the MOS labels.

Loss, on the labelled images (MOS standardised with the labels' own mean/std):
    MSE(a·s + b, mos_z) + λ_rank · BCE(σ((s_i − s_j)/τ), [mos_i > mos_j])
with (a, b) trained alongside the head. LEAF itself does not fine-tune its distilled head: it
maps the head's score onto MOS and corrects it on the features (``calibration.prior``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from leafiqa.config import CalibrationConfig
from leafiqa.student.distill import train_head
from leafiqa.student.head import QualityHead
from leafiqa.student.losses import pair_loss
from leafiqa.student.ridge import FeatureSource

#: the labels-only baseline's PCA is fitted on at most this many pool images (a seeded sample)
PCA_ROWS = 20_000


class LabelLoss:
    def __init__(self, rows: np.ndarray, mos: np.ndarray, config: CalibrationConfig,
                 affine: torch.nn.Parameter) -> None:
        self.rows = torch.as_tensor(rows)
        mos = np.asarray(mos, dtype=np.float64)
        self.target = torch.as_tensor((mos - mos.mean()) / (mos.std() or 1.0), dtype=torch.float32)
        self.affine = affine
        self.config = config
        rng = np.random.default_rng(config.seed)
        i, j = np.triu_indices(len(rows), k=1)
        if i.size > config.max_rank_pairs:
            pick = rng.choice(i.size, size=config.max_rank_pairs, replace=False)
            i, j = i[pick], j[pick]
        differs = mos[i] != mos[j]
        self.pair_i = torch.as_tensor(i[differs])
        self.pair_j = torch.as_tensor(j[differs])
        self.pair_target = torch.as_tensor((mos[i] > mos[j])[differs], dtype=torch.float32)

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        s = scores[self.rows]
        loss = ((self.affine[0] * s + self.affine[1] - self.target) ** 2).mean()
        if self.config.rank_weight > 0 and self.pair_i.numel():
            loss = loss + self.config.rank_weight * pair_loss(
                s[self.pair_i], s[self.pair_j], self.pair_target,
                torch.ones_like(self.pair_target), self.config.rank_temperature)
        return loss


def finetune_head(
    head: QualityHead,
    features: np.ndarray,
    label_rows: np.ndarray,
    mos: np.ndarray,
    config: CalibrationConfig | None = None,
    embedded: bool = False,
) -> QualityHead:
    """A copy of ``head`` fine-tuned on the labelled rows (see module docstring);
    ``embedded``: ``features`` are already the head's projection of the features."""
    config = config or CalibrationConfig()
    head = copy.deepcopy(head)
    if len(label_rows) < 2:
        return head
    with torch.no_grad():
        labelled = torch.as_tensor(features[label_rows], dtype=torch.float32)
        head.eval()
        s = head.score_embedded(labelled if embedded else head.embed(labelled)).numpy()
        mos_z = (mos - mos.mean()) / (mos.std() or 1.0)
        slope = float(np.polyfit(s, mos_z, 1)[0]) if s.std() > 0 else 1.0
    affine = torch.nn.Parameter(torch.tensor([max(slope, 0.05), 0.0]))
    label_loss = LabelLoss(label_rows, mos, config, affine)
    train_head(head, features, label_loss, None, steps=config.steps, lr=config.lr,
               weight_decay=config.weight_decay, seed=config.seed, extra_parameters=[affine],
               embedded=embedded)
    return head


def train_on_labels(
    features: np.ndarray | FeatureSource,
    label_rows: np.ndarray,
    mos: np.ndarray,
    config: CalibrationConfig | None = None,
    hidden: int = 64,
    dropout: float = 0.2,
) -> QualityHead:
    """Baseline: the same head, from scratch, on the labels alone (same loss, same steps).
    Its PCA is fitted on every row of ``features`` — on a seeded sample of ``PCA_ROWS`` of
    them in a bigger pool — and the rows are projected chunk by chunk, so a pool of any size
    costs the sample and n × components floats, never the n × D matrix."""
    config = config or CalibrationConfig()
    source = features if isinstance(features, FeatureSource) else FeatureSource.of(features)
    torch.manual_seed(config.seed)
    head = QualityHead(source.n_features, hidden, dropout)
    fit_rows = np.arange(source.n_rows)
    if fit_rows.size > PCA_ROWS:
        fit_rows = np.sort(np.random.default_rng(config.seed).choice(fit_rows, PCA_ROWS,
                                                                     replace=False))
    head.set_normalisation(source.take(fit_rows))
    with torch.no_grad():
        embedded = source.map(
            lambda chunk: head.embed(torch.as_tensor(chunk, dtype=torch.float32)).numpy())
    return finetune_head(head, embedded, label_rows, mos, config, embedded=True)

