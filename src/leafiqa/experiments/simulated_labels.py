"""Labels as a user's rating study gives them, for ``leaf bench``: a few simulated raters rate
the labelled images (one of them careless), and the very screening and export code of ``leaf
ratings export`` (``labelling.screening.estimate``) turns their votes into MOS — so the bench
measures what a study of a few people gives, judged against the data set's lab MOS.

Each image's true quality is its lab MOS on the study's 1–5 ACR scale (the data set's MOS range
mapped onto it) and its opinion spread the lab's standard deviation; an honest rater adds an
offset of their own (the same on every image) and their own noise and answers in whole levels;
a careless rater answers at random, presses one button, or answers the scale upside down. Two
gold images, the clearest of the training images left unlabelled at either end of the scale,
are shown to every rater like any other image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from leafiqa.experiments.workspace import Workspace
from leafiqa.labelling.screening import estimate
from leafiqa.labelling.simulate import RaterSpec, simulate_panel, to_acr
from leafiqa.labelling.study import StudySettings

CARELESS_KINDS = ("random", "one-button", "inverse")
#: an honest rater's offset is uniform in ±OFFSET levels, their noise uniform in NOISE levels
OFFSET = 0.5
NOISE = (0.3, 0.8)
GOLD = 2
REPEATS = 3


@dataclass
class StudyLabels:
    """What a simulated study of the labelled images gave: MOS on the data set's scale and each
    label's error variance for the positions in ``rows`` (those with a kept vote), and how it
    went."""

    rows: np.ndarray        # positions among the labelled training rows that got a label
    values: np.ndarray      # their MOS, on the data set's scale
    noise: np.ndarray       # their error variance against a large panel, on that scale
    agreement: float        # SRCC of the exported MOS with the lab MOS
    honest_kept: float      # share of honest raters kept
    careless_kept: float    # share of careless raters kept

    def columns(self) -> dict[str, float]:
        return {"labels_srcc": self.agreement, "honest_kept": self.honest_kept,
                "careless_kept": self.careless_kept}


def panel(raters: int, careless: int, rng: np.random.Generator) -> list[RaterSpec]:
    """``raters`` raters, the first ``careless`` of them careless (of a kind drawn at random)."""
    specs = [RaterSpec(str(rng.choice(CARELESS_KINDS))) for _ in range(careless)]
    specs += [RaterSpec("honest", offset=float(rng.uniform(-OFFSET, OFFSET)),
                        noise=float(rng.uniform(*NOISE))) for _ in range(raters - careless)]
    return specs


def study_labels(ws: Workspace, label_rows: np.ndarray, raters: int, careless: int,
                 rng: np.random.Generator) -> StudyLabels:
    """Simulate a study of ``raters`` raters on the training images at ``label_rows`` and
    screen and export it as ``leaf ratings export`` does (BT.500 after the crowd checks)."""
    low, high = float(np.nanmin(ws.mos)), float(np.nanmax(ws.mos))
    rows = ws.train_rows[label_rows]
    spread = np.array([ws.manifest[i].std or 0.0 for i in range(len(ws.manifest))])
    truth, ambiguity = to_acr(ws.mos[rows], spread[rows], low, high)
    gold_rows = gold_images(ws, label_rows)
    gold_truth, gold_ambiguity = to_acr(ws.mos[gold_rows], spread[gold_rows], low, high)
    specs = panel(raters, careless, rng)
    votes, _ = simulate_panel(truth, ambiguity, specs, gold=len(gold_rows), repeats=REPEATS,
                              rng=rng, gold_truth=gold_truth, gold_ambiguity=gold_ambiguity)
    exported = estimate(votes, StudySettings(scale="acr"), method="bt500")
    kept = np.array([check.kept for check in exported.checks], dtype=bool)
    got = ~np.isnan(exported.mos)
    scale = (high - low) / 4.0
    values = low + (exported.mos[got] - 1.0) * scale
    assert exported.se is not None
    noise = (exported.se[got] * scale) ** 2  # NaN (unknown) with a single kept rater
    honest = np.array([spec.kind == "honest" for spec in specs])
    agreement = float(spearmanr(values, ws.mos[rows][got]).statistic) if got.sum() > 2 else (
        float("nan"))
    return StudyLabels(np.asarray(label_rows)[got], values, noise, agreement,
                       float(kept[honest].mean()) if honest.any() else float("nan"),
                       float(kept[~honest].mean()) if (~honest).any() else float("nan"))


def gold_images(ws: Workspace, label_rows: np.ndarray) -> np.ndarray:
    """The manifest rows of ``GOLD`` gold images: of the training images not labelled, the
    lowest and the highest by lab MOS with a below-median opinion spread (clear cases)."""
    rest = np.setdiff1d(np.arange(ws.train_rows.size), label_rows)
    rows = ws.train_rows[rest]
    rows = rows[~np.isnan(ws.mos[rows])]
    spread = np.array([ws.manifest[i].std or 0.0 for i in rows])
    clear = rows[spread <= np.median(spread)] if spread.any() else rows
    ordered = clear[np.argsort(ws.mos[clear], kind="stable")]
    return np.concatenate([ordered[: GOLD // 2], ordered[len(ordered) - (GOLD - GOLD // 2):]])
