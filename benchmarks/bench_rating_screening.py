"""Does screening keep honest raters and drop careless ones? Simulated studies
(``leafiqa.labelling.simulate.simulate_panel``) drawn from a shared set's MOS and per-image std
(mapped onto the 1..5 ACR scale), screened by the code ``leaf ratings export`` runs
(``screening.estimate``, default ``bt500``).

Each study: ``--images`` images drawn at random, 2 gold images picked as an owner would (a
clearly excellent and a clearly broken photo from outside the study: the set's top and bottom
5 % by MOS, entered as 5 and 1 — or 100 and 0 on the slider), 3 planned repeats per rater.
Honest raters: offset uniform in ±1 level, noise uniform in 0.3–0.8 level, plus the image's own
opinion spread (the set's std). Careless raters, a minority of every panel (0 up to
⌊(raters − 1)/2⌋, as many studies with each count), each random, one-button or inverse with
equal chance. Per number of raters and scale: honest raters kept, careless excluded (all, and
per kind), studies whose export would be empty, studies where the fallback kept the labels
alive, and the MOS's RMSE (in ACR levels) and SRCC against the truth next to the plain mean of
every vote's and the mean of the honest raters' alone; and r (agreement with the kept
raters' median) below which one honest rater in ten falls and above which one random rater in
twenty rises.

    PYTHONPATH=src python benchmarks/bench_rating_screening.py --data ../shared/data/clive-dev
        [--studies 300] [--images 25] [--seed 0] [--bt500-min-raters 2]
    # the constants (screening.ScreeningRules) were chosen with --tune on AGIQA-3K:
    PYTHONPATH=src python benchmarks/bench_rating_screening.py --data ../shared/data/agiqa3k \\
        --tune
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leafiqa.labelling import screening
from leafiqa.labelling.screening import RULES, ScreeningRules, Votes, check_raters, estimate
from leafiqa.labelling.simulate import KINDS, RaterSpec, errors, simulate_panel, to_acr
from leafiqa.labelling.study import StudySettings

CARELESS = [kind for kind in KINDS if kind != "honest"]


@dataclass
class Pool:
    name: str
    truth: np.ndarray      # ACR levels
    ambiguity: np.ndarray  # ACR levels
    top: np.ndarray        # indices of the clearest images, as an owner would pick gold
    bottom: np.ndarray


def load_pool(folder: Path) -> Pool:
    frame = pd.read_csv(folder / "data.csv")
    spread = frame["std"] if "std" in frame else frame["std_quality"]
    high = 100.0 if frame["mos"].max() > 5.0 else 5.0  # clive-dev 0–100, AGIQA-3K 0–5
    truth, ambiguity = to_acr(frame["mos"].to_numpy(), spread.to_numpy(), 0.0, high)
    order = np.argsort(truth)
    tail = max(2, len(truth) // 20)
    return Pool(folder.name, truth, ambiguity, order[-tail:], order[:tail])


def panels(pool: Pool, raters: int, scale: str, studies: int, images: int,
           rng: np.random.Generator) -> Iterator[tuple[list[RaterSpec], Votes, np.ndarray]]:
    """``studies`` simulated studies of ``raters`` raters: (specs, votes, truth)."""
    clear = np.concatenate([pool.top, pool.bottom])
    choices = np.setdiff1d(np.arange(len(pool.truth)), clear)
    for k in range(studies):
        careless = k % ((raters - 1) // 2 + 1)
        specs = [RaterSpec("honest", float(rng.uniform(-1, 1)), float(rng.uniform(0.3, 0.8)))
                 for _ in range(raters - careless)]
        specs += [RaterSpec(str(rng.choice(CARELESS))) for _ in range(careless)]
        order = rng.permutation(len(specs))
        specs = [specs[i] for i in order]
        shown = rng.choice(choices, size=images, replace=False)
        gold = np.array([rng.choice(pool.top), rng.choice(pool.bottom)])
        votes, truth = simulate_panel(pool.truth[shown], pool.ambiguity[shown], specs,
                                      scale=scale, gold=2, repeats=3, rng=rng,
                                      gold_truth=pool.truth[gold],
                                      gold_ambiguity=pool.ambiguity[gold])
        yield specs, votes, truth


def tally(pool: Pool, raters: int, scale: str, studies: int, images: int, seed: int,
          rules: ScreeningRules, full: bool) -> dict[str, float]:
    """One cell's figures; ``full``: the whole export (checks + BT.500, MOS errors), else the
    checks alone (fast, for --tune)."""
    rng = np.random.default_rng([seed, raters, scale == "slider"])
    settings = StudySettings(scale=scale)
    counts: dict[str, list[float]] = defaultdict(list)
    for specs, votes, truth in panels(pool, raters, scale, studies, images, rng):
        if full:
            result = estimate(votes, settings, rules=rules)
            checks = result.checks
            mean = estimate(votes, settings, method="mean", rules=rules)
            level = settings.level
            counts["empty"].append(float(np.isnan(result.mos).all()))
            if np.isnan(result.mos).all():
                continue
            screened, plain = errors(result.mos, truth), errors(mean.mos, truth)
            counts["rmse"].append(screened["rmse"] / level)
            counts["rmse mean"].append(plain["rmse"] / level)
            honest = [s for s, spec in enumerate(specs) if not spec.careless]
            oracle = np.nanmean(votes.scores[: len(truth)][:, honest], axis=(1, 2))
            counts["rmse honest only"].append(errors(oracle, truth)["rmse"] / level)
            counts["srcc"].append(screened["srcc"])
            counts["srcc mean"].append(plain["srcc"])
        else:
            checks = check_raters(votes, settings, rules)
            counts["empty"].append(float(not any(check.kept for check in checks)))
        counts["fallback"].append(float(any(check.verdict == "kept by the fallback"
                                            for check in checks)))
        for spec, check in zip(specs, checks, strict=True):
            if spec.kind in ("honest", "random") and check.correlation is not None:
                counts[f"{spec.kind} r"].append(check.correlation)
            if spec.careless:
                counts["careless excluded"].append(float(not check.kept))
                counts[f"{spec.kind} excluded"].append(float(not check.kept))
            else:
                counts["honest kept"].append(float(check.kept))
                if abs(spec.offset) > 0.75:
                    counts["harsh/lenient kept"].append(float(check.kept))
                if spec.noise > 0.65:
                    counts["noisy kept"].append(float(check.kept))
    figures = {key: float(np.mean(values)) for key, values in counts.items()
               if not key.endswith(" r")}
    # how far apart careful and careless raters' agreement lies: r one honest rater in ten is
    # below, and one random rater in twenty above
    for key, share in (("honest r", 10), ("random r", 95)):
        if counts[key]:
            figures[f"{key} p{share}"] = float(np.percentile(counts[key], share))
    return figures


def table(pool: Pool, studies: int, images: int, seed: int, rules: ScreeningRules) -> None:
    print(f"{pool.name}: {len(pool.truth)} images; {images} rated + 2 gold per study, 3 repeats "
          f"per rater, {studies} studies per row; rules {dataclasses.asdict(rules)}; BT.500 "
          f"screening from {screening.BT500_MIN_RATERS} kept raters")
    columns = ["honest kept", "harsh/lenient kept", "noisy kept", "careless excluded",
               "random excluded", "one-button excluded", "inverse excluded", "empty",
               "fallback", "rmse", "rmse mean", "rmse honest only", "srcc", "srcc mean",
               "honest r p10", "random r p95"]
    print("| raters | scale | " + " | ".join(columns) + " |")
    print("|---:|---|" + "---:|" * len(columns))
    for scale in ("acr", "slider"):
        for raters in range(3, 9):
            figures = tally(pool, raters, scale, studies, images, seed, rules, full=True)
            cells = [("—" if c not in figures else f"{figures[c]:.3f}"
                      if c.startswith(("rmse", "srcc")) or c.endswith(("p10", "p95"))
                      else f"{figures[c]:.1%}") for c in columns]
            print(f"| {raters} | {scale} | " + " | ".join(cells) + " |", flush=True)


def tune(pool: Pool, studies: int, images: int, seed: int) -> None:
    """Honest kept and careless excluded, over all cells (3–8 raters × acr/slider) and in the
    worst cell, for a grid of the agreement, repeat and gold constants; checks alone."""
    print(f"{pool.name}: {studies} studies per cell (3–8 raters × acr/slider), {images} images")
    print("| min_agreement_z | weak_agreement_z | max_repeat_difference | gold_tolerance | "
          "honest kept (worst cell) | careless excluded (worst cell) | empty (worst) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    grid = itertools.product((0.75, 1.0, 1.25), (1.75, 2.25, 2.75), (1.0, 1.4), (1.5, 2.0))
    best: tuple[float, float, ScreeningRules] | None = None
    for agreement, weak, repeats, tolerance in grid:
        rules = dataclasses.replace(RULES, min_agreement_z=agreement, weak_agreement_z=weak,
                                    max_repeat_difference=repeats, gold_tolerance=tolerance)
        cells = [tally(pool, raters, scale, studies, images, seed, rules, full=False)
                 for scale in ("acr", "slider") for raters in range(3, 9)]
        honest = [c["honest kept"] for c in cells]
        careless = [c["careless excluded"] for c in cells]
        print(f"| {agreement:g} | {weak:g} | {repeats:.2f} | {tolerance:g} | "
              f"{np.mean(honest):.1%} ({min(honest):.1%}) | "
              f"{np.mean(careless):.1%} ({min(careless):.1%}) | "
              f"{max(c['empty'] for c in cells):.1%} |", flush=True)
        score = (float(min(np.mean(honest), np.mean(careless))),
                 float(min(min(honest), min(careless))))
        if best is None or score > best[:2]:
            best = (*score, rules)
    assert best is not None
    print("best (the lower of honest kept and careless excluded, over all cells, highest; "
          f"then the lower of the worst cells): {dataclasses.asdict(best[2])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/clive-dev"))
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="a grid of the constants instead")
    parser.add_argument("--bt500-min-raters", type=int, default=screening.BT500_MIN_RATERS,
                        help="kept raters from which BT.500's subject screening runs (2: always)")
    args = parser.parse_args()
    screening.BT500_MIN_RATERS = args.bt500_min_raters
    pool = load_pool(args.data)
    if args.tune:
        tune(pool, args.studies, args.images, args.seed)
    else:
        table(pool, args.studies, args.images, args.seed, RULES)


if __name__ == "__main__":
    main()
