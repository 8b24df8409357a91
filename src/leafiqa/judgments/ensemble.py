"""Teacher ensembles built from stored judgments.

Each member's scores are z-scored over the images; an image's ensemble z is the reliability-
weighted mean of its members' z. Reliability is the members' agreement: 1 − (std of their z)/2,
clipped to [0, 1]. An ensemble pair's P(A better) is the reliability-weighted fraction of members
that put A above B; its reliability is |2P − 1| (unanimity → 1, a split vote → 0)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import norm

from leafiqa.judgments.pairs import standardised_scores
from leafiqa.teachers.protocol import PairJudgment, PointJudgment


def ensemble_id(teacher_ids: Sequence[str]) -> str:
    members = sorted(teacher_ids)
    digest = hashlib.sha1("|".join(members).encode()).hexdigest()[:8]
    return f"ensemble:{len(members)}:{digest}"


def _member_z(
    members: Mapping[str, Mapping[str, PointJudgment]], keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(members × images) z-scores and weights; NaN/0 where a member has no judgment."""
    z = np.full((len(members), len(keys)), np.nan)
    weight = np.zeros((len(members), len(keys)))
    for m, points in enumerate(members.values()):
        standard = standardised_scores({k: points[k] for k in keys if k in points})
        for i, key in enumerate(keys):
            if key in standard:
                z[m, i] = standard[key]
                weight[m, i] = max(points[key].reliability, 0.05)
    return z, weight


def ensemble_points(
    members: Mapping[str, Mapping[str, PointJudgment]], keys: Sequence[str]
) -> dict[str, PointJudgment]:
    keys = list(dict.fromkeys(keys))
    teacher_id = ensemble_id(list(members))
    z, weight = _member_z(members, keys)
    out: dict[str, PointJudgment] = {}
    for i, key in enumerate(keys):
        present = ~np.isnan(z[:, i])
        if not present.any():
            continue
        zi, wi = z[present, i], weight[present, i]
        mean = float(np.sum(zi * wi) / np.sum(wi))
        agreement = float(np.clip(1.0 - zi.std() / 2.0, 0.0, 1.0)) if zi.size > 1 else 0.5
        out[key] = PointJudgment(
            image_key=key, teacher_id=teacher_id, prompt_version="ensemble-v1", levels=(),
            probs=(), score=float(norm.cdf(mean)), reliability=agreement, method="ensemble",
        )
    return out


def ensemble_pairs(
    members: Mapping[str, Mapping[str, PointJudgment]],
    pairs: Sequence[tuple[str, str]],
) -> list[PairJudgment]:
    keys = list(dict.fromkeys(k for pair in pairs for k in pair))
    index = {k: i for i, k in enumerate(keys)}
    z, weight = _member_z(members, keys)
    teacher_id = ensemble_id(list(members))
    out: list[PairJudgment] = []
    for key_a, key_b in pairs:
        a, b = index[key_a], index[key_b]
        present = ~np.isnan(z[:, a]) & ~np.isnan(z[:, b])
        if not present.any():
            continue
        w = np.sqrt(weight[present, a] * weight[present, b])
        votes = np.sign(z[present, a] - z[present, b]) * 0.5 + 0.5  # 1, 0.5 (tie) or 0
        prob = float(np.sum(w * votes) / np.sum(w))
        out.append(PairJudgment(
            key_a=key_a, key_b=key_b, teacher_id=teacher_id, prompt_version="ensemble-v1",
            p_first_ab=prob, p_first_ba=1.0 - prob, prob_a_better=prob,
            reliability=abs(2.0 * prob - 1.0), source="derived", method="ensemble-vote",
        ))
    return out


def merge_with_fallback(sources: Sequence[Mapping[str, PointJudgment]]) -> dict[str, PointJudgment]:
    """First source that judged an image wins. Scores are put on one scale first (each source
    z-scored over its own images, then mapped to [0, 1] by the normal CDF), since different
    teachers' raw scores are not comparable."""
    merged: dict[str, PointJudgment] = {}
    for points in sources:
        z = standardised_scores(points)
        for key, judgment in points.items():
            if key not in merged:
                merged[key] = PointJudgment(
                    image_key=key, teacher_id=judgment.teacher_id,
                    prompt_version=judgment.prompt_version, levels=judgment.levels,
                    probs=judgment.probs, score=float(norm.cdf(z[key])),
                    reliability=judgment.reliability, method=judgment.method,
                    image_name=judgment.image_name,
                )
    return merged
