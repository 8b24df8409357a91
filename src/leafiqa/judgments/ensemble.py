"""Teacher ensembles built from stored judgments, each teacher weighted by what it is worth.

Each member's log-odds are z-scored over the images. A member's *worth* is estimated without
asking it how sure it is (on camera photos the most confident recorded MLLM is among the least
accurate):

- before any label exists, by its agreement with the other members: the correlation of its
  z with the mean z of the others (a one-factor view: members that track the shared quality
  signal correlate with the consensus, idiosyncratic ones do not);
- once labels exist, by its agreement with the labels (Spearman correlation on the labelled
  images), shrunk towards the consensus estimate while labels are few:
  r = (n · r_labels + k · r_consensus) / (n + k).

A member of correlation r (clipped to [0, 0.95]) gets weight r / (1 − r²) — the optimal weight
for a member that is the shared signal plus independent noise — normalised to sum to 1; members
at or below zero correlation get none. An image's ensemble z is the weighted mean of its members'
z; its reliability is their agreement: 1 − (weighted std of their z)/2, clipped to [0, 1]. An
ensemble pair's P(A better) is the weighted fraction of members that put A above B; its
reliability is |2P − 1| (unanimity → 1, a split vote → 0)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from leafiqa.judgments.pairs import standardised_scores
from leafiqa.teachers.protocol import PairJudgment, PointJudgment, from_log_odds

#: k in the shrinkage of label agreement towards consensus agreement
LABEL_SHRINKAGE = 30
MAX_CORRELATION = 0.95


def ensemble_id(teacher_ids: Sequence[str]) -> str:
    members = sorted(teacher_ids)
    digest = hashlib.sha1("|".join(members).encode()).hexdigest()[:8]
    return f"ensemble:{len(members)}:{digest}"


@dataclass(frozen=True)
class MemberWeight:
    teacher_id: str
    consensus_correlation: float  # with the mean of the other members, over every image
    label_correlation: float | None  # Spearman with the MOS of the labelled images
    weight: float


def member_z(
    members: Mapping[str, Mapping[str, PointJudgment]], keys: Sequence[str]
) -> np.ndarray:
    """(members × images) z-scored log-odds; NaN where a member has no judgment."""
    z = np.full((len(members), len(keys)), np.nan)
    for m, points in enumerate(members.values()):
        standard = standardised_scores({k: points[k] for k in keys if k in points})
        for i, key in enumerate(keys):
            if key in standard:
                z[m, i] = standard[key]
    return z


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    both = ~(np.isnan(a) | np.isnan(b))
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return 0.0
    return float(np.corrcoef(a[both], b[both])[0, 1])


def consensus_correlations(z: np.ndarray) -> np.ndarray:
    """Each member's correlation with the mean z of the other members."""
    if z.shape[0] < 2:
        return np.ones(z.shape[0])
    out = np.zeros(z.shape[0])
    for m in range(z.shape[0]):
        others = np.delete(z, m, axis=0)
        with np.errstate(invalid="ignore"):
            consensus = np.nanmean(others, axis=0)
        out[m] = _correlation(z[m], consensus)
    return out


def member_weights(
    members: Mapping[str, Mapping[str, PointJudgment]],
    keys: Sequence[str],
    labelled: Mapping[str, float] | None = None,
    shrinkage: int = LABEL_SHRINKAGE,
    equal: bool = False,
) -> list[MemberWeight]:
    """The members' weights (see module docstring); ``labelled`` maps image key → MOS;
    ``equal`` gives every member the same weight (the ablation of this weighting)."""
    keys = list(dict.fromkeys(keys))
    z = member_z(members, keys)
    consensus = consensus_correlations(z)
    correlation = consensus.copy()
    label_r: list[float | None] = [None] * len(members)
    if labelled:
        columns = [i for i, k in enumerate(keys) if k in labelled]
        mos = np.array([labelled[keys[i]] for i in columns])
        n = len(columns)
        for m in range(len(members)):
            values = z[m, columns]
            present = ~np.isnan(values)
            if present.sum() >= 3 and np.std(values[present]) > 0:
                r = float(spearmanr(values[present], mos[present])[0])
                label_r[m] = r
                correlation[m] = (n * r + shrinkage * consensus[m]) / (n + shrinkage)
    clipped = np.clip(correlation, 0.0, MAX_CORRELATION)
    raw = clipped / (1.0 - clipped**2)
    if equal or raw.sum() <= 0:
        raw = np.ones(len(raw))
    weights = raw / raw.sum()
    return [MemberWeight(teacher_id, float(consensus[m]), label_r[m], float(weights[m]))
            for m, teacher_id in enumerate(members)]


def ensemble_points(
    members: Mapping[str, Mapping[str, PointJudgment]],
    keys: Sequence[str],
    weights: Sequence[MemberWeight] | None = None,
) -> dict[str, PointJudgment]:
    """The ensemble's judgment of each image; its score's log-odds are the weighted mean z."""
    keys = list(dict.fromkeys(keys))
    weights = weights or member_weights(members, keys)
    teacher_id = ensemble_id(list(members))
    z = member_z(members, keys)
    w = np.array([weight.weight for weight in weights])
    out: dict[str, PointJudgment] = {}
    for i, key in enumerate(keys):
        present = ~np.isnan(z[:, i]) & (w > 0)
        if not present.any():
            continue
        zi, wi = z[present, i], w[present] / w[present].sum()
        mean = float(np.sum(zi * wi))
        spread = float(np.sqrt(np.sum(wi * (zi - mean) ** 2)))
        agreement = float(np.clip(1.0 - spread / 2.0, 0.0, 1.0)) if zi.size > 1 else 0.5
        out[key] = PointJudgment(
            image_key=key, teacher_id=teacher_id, prompt_version="ensemble-v2", levels=(),
            probs=(), score=from_log_odds(mean), reliability=agreement, method="ensemble",
        )
    return out


def ensemble_pairs(
    members: Mapping[str, Mapping[str, PointJudgment]],
    pairs: Sequence[tuple[str, str]],
    weights: Sequence[MemberWeight] | None = None,
) -> list[PairJudgment]:
    keys = list(dict.fromkeys(k for pair in pairs for k in pair))
    index = {k: i for i, k in enumerate(keys)}
    z = member_z(members, keys)
    w = np.array([weight.weight for weight in (weights or member_weights(members, keys))])
    teacher_id = ensemble_id(list(members))
    out: list[PairJudgment] = []
    for key_a, key_b in pairs:
        a, b = index[key_a], index[key_b]
        present = ~np.isnan(z[:, a]) & ~np.isnan(z[:, b]) & (w > 0)
        if not present.any():
            continue
        votes = np.sign(z[present, a] - z[present, b]) * 0.5 + 0.5  # 1, 0.5 (tie) or 0
        prob = float(np.sum(w[present] * votes) / np.sum(w[present]))
        out.append(PairJudgment(
            key_a=key_a, key_b=key_b, teacher_id=teacher_id, prompt_version="ensemble-v2",
            p_first_ab=prob, p_first_ba=1.0 - prob, prob_a_better=prob,
            reliability=abs(2.0 * prob - 1.0), source="derived", method="ensemble-vote",
        ))
    return out


def merge_with_fallback(sources: Sequence[Mapping[str, PointJudgment]]) -> dict[str, PointJudgment]:
    """First source that judged an image wins. Scores are put on one scale first (each source
    z-scored over its own log-odds, then mapped back to [0, 1] by the logistic, so a score's
    log-odds are its z), since different teachers' raw scores are not comparable."""
    merged: dict[str, PointJudgment] = {}
    for points in sources:
        z = standardised_scores(points)
        for key, judgment in points.items():
            if key not in merged:
                merged[key] = PointJudgment(
                    image_key=key, teacher_id=judgment.teacher_id,
                    prompt_version=judgment.prompt_version, levels=judgment.levels,
                    probs=judgment.probs, score=from_log_odds(z[key]),
                    reliability=judgment.reliability, method=judgment.method,
                    image_name=judgment.image_name,
                )
    return merged
