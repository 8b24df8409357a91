"""Reliability-weighted point-wise and pair-wise losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from leafiqa.errors import ConfigError


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)


def point_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted MSE to the teacher's (standardised) expected score."""
    return weighted_mean((pred - target) ** 2, weight)


def pair_loss(
    score_a: torch.Tensor,
    score_b: torch.Tensor,
    prob_a_better: torch.Tensor,
    weight: torch.Tensor,
    temperature: float = 0.5,
    kind: str = "bce",
) -> torch.Tensor:
    """Binary cross-entropy (or fidelity) of sigmoid((s_a − s_b)/τ) against P(A better)."""
    logits = (score_a - score_b) / temperature
    if kind == "bce":
        losses = F.binary_cross_entropy_with_logits(logits, prob_a_better, reduction="none")
    elif kind == "fidelity":
        p = torch.sigmoid(logits)
        agree = (p * prob_a_better + 1e-8).sqrt()
        disagree = ((1 - p) * (1 - prob_a_better) + 1e-8).sqrt()
        losses = 1.0 - agree - disagree
    else:
        raise ConfigError(f"unknown pair loss '{kind}' (bce or fidelity)")
    return weighted_mean(losses, weight)
