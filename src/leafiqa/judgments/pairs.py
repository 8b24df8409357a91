"""Which pairs to compare under a budget, and pairs derived from point-wise judgments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from leafiqa.teachers.protocol import PairJudgment, PointJudgment, log_odds


def select_pairs(
    keys: Sequence[str],
    scores: Mapping[str, float] | None = None,
    *,
    pairs_per_image: int = 4,
    near_fraction: float = 0.5,
    near_window: int = 8,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """About ``pairs_per_image`` pairs for each image (each image takes part in ≥ that many).

    A ``near_fraction`` of them pair an image with one whose point-wise score is close (within
    ``near_window`` ranks): those orderings are where point-wise scores are least sure and a
    pair-wise comparison teaches most. The rest are random pairs, which tie the ranking together
    globally. Pairs come out as (a, b) with a < b, without duplicates, in a fixed order."""
    unique = list(dict.fromkeys(keys))
    n = len(unique)
    if n < 2 or pairs_per_image <= 0:
        return []
    rng = np.random.default_rng(seed)
    if scores is not None and all(k in scores for k in unique):
        order = sorted(range(n), key=lambda i: (scores[unique[i]], unique[i]))
    else:
        order = list(rng.permutation(n))
    rank_of = {index: rank for rank, index in enumerate(order)}
    n_near = int(round(pairs_per_image * near_fraction)) if scores is not None else 0
    chosen: set[tuple[str, str]] = set()

    def add(i: int, j: int) -> None:
        if i != j:
            a, b = unique[i], unique[j]
            chosen.add((a, b) if a < b else (b, a))

    half_window = max(1, near_window // 2)
    for i in range(n):
        rank = rank_of[i]
        for _ in range(n_near):
            offset = int(rng.integers(1, half_window + 1)) * (1 if rng.random() < 0.5 else -1)
            neighbour = order[min(n - 1, max(0, rank + offset))]
            add(i, neighbour)
        for _ in range(pairs_per_image - n_near):
            add(i, int(rng.integers(0, n)))
    return sorted(chosen)


def standardised_scores(points: Mapping[str, PointJudgment]) -> dict[str, float]:
    """Each judgment's log-odds score (see ``log_odds``), standardised over ``points``."""
    logits = {key: log_odds(p.score) for key, p in points.items()}
    values = np.array(list(logits.values()), dtype=np.float64)
    if values.size == 0:
        return {}
    spread = values.std() or 1.0
    return {key: (value - values.mean()) / spread for key, value in logits.items()}


def derive_pairs(
    points: Mapping[str, PointJudgment],
    pairs: Sequence[tuple[str, str]],
    *,
    temperature: float = 0.5,
) -> list[PairJudgment]:
    """Pair judgments computed from two point-wise judgments (source ``derived``).

    P(A better) = sigmoid((z_A − z_B) / temperature) on the teacher's standardised log-odds, so it
    points the same way as the scores; reliability = sqrt(r_A · r_B) · |2P − 1| shrinks to 0 for
    near-ties and for pairs whose point judgments were unsure."""
    z = standardised_scores(points)
    derived: list[PairJudgment] = []
    for key_a, key_b in pairs:
        if key_a not in points or key_b not in points:
            continue
        a, b = points[key_a], points[key_b]
        prob = float(1.0 / (1.0 + np.exp(-(z[key_a] - z[key_b]) / temperature)))
        reliability = float(np.sqrt(max(a.reliability, 0.0) * max(b.reliability, 0.0)))
        derived.append(
            PairJudgment(
                key_a=key_a,
                key_b=key_b,
                teacher_id=a.teacher_id,
                prompt_version=a.prompt_version,
                p_first_ab=prob,
                p_first_ba=1.0 - prob,
                prob_a_better=prob,
                reliability=reliability * abs(2.0 * prob - 1.0),
                source="derived",
                method=f"derived:{a.method}",
            )
        )
    return derived
