"""How the accuracy estimate's re-weighting for chosen labels matters. For labels the
``variance`` design picks (the default), on every split and distillation seed, the whole
calibration is cross-validated once (``methods.estimate_folds``, exactly as ``leaf bench``
does) and the same folds are then re-weighted each way: no weights, each label's
Voronoi cell in the feature PCA (1 neighbour), and every pool image shared among its 3, 5
(``labelling.designs.REPRESENTATION_NEIGHBOURS``) or 10 nearest labels. Prints, per budget and
weighting, the estimate's mean error against the test SRCC and how often its 90 % interval,
widened for the test set's size, covers it — the columns of ``leaf bench``'s labelling.md.

Run: PYTHONPATH=src python scripts/estimate_weighting.py CONFIG [--budgets 0.05,0.1,0.3]
     [--splits split_1,...] [--seeds 0,1,2]
(configs/clive.yaml: a few minutes; configs/demo.yaml, AGIQA-3K: longer)."""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from leafiqa.calibration.estimate import MIN_LABELS_FOR_ESTIMATE, estimate_from_folds
from leafiqa.config import load_config
from leafiqa.evaluation.report import budget_label
from leafiqa.experiments.bench import (
    BenchGrid,
    label_draws,
    labelled_views,
    split_config,
    train_embedding,
)
from leafiqa.experiments.methods import estimate_folds, run_leaf
from leafiqa.experiments.workspace import Workspace, prepare
from leafiqa.labelling.designs import representation_weights

WEIGHTINGS = {"none": 0, "cells (1)": 1, "shared 3": 3, "shared 5": 5, "shared 10": 10}


def one_run(ws: Workspace, embedding: np.ndarray, label_rows: np.ndarray, seed: int
            ) -> dict[str, tuple[float, bool]]:
    """(estimate − test SRCC, interval covers the test SRCC) per weighting, for one label set."""
    result = run_leaf(ws, label_rows, seed)
    test = float(spearmanr(result.predictions, ws.mos[ws.test_rows]).statistic)
    folds = estimate_folds(ws, result.head, ws.predict(result.head), label_rows, seed)
    out: dict[str, tuple[float, bool]] = {}
    if folds is None:
        return out
    for name, neighbours in WEIGHTINGS.items():
        weights = (None if neighbours == 0 else
                   representation_weights(embedding, label_rows, neighbours))
        estimate = estimate_from_folds(folds, weights, seed=seed, target=ws.protocol)
        low, high = estimate.srcc_interval_for(int(ws.test_rows.size))
        out[name] = (estimate.srcc - test, low <= test <= high)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--budgets", default="0.05,0.1,0.3")
    parser.add_argument("--splits", default="split_1,split_2,split_3,split_4,split_5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--protocol", default="new", choices=["new", "pool"])
    parser.add_argument("--raters", type=int, default=0)
    parser.add_argument("--careless", type=int, default=0)
    args = parser.parse_args()
    grid = BenchGrid(protocol=args.protocol, raters=args.raters, careless=args.careless)
    config = load_config(args.config)
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    cells: dict[tuple[float, str], list[tuple[float, bool]]] = defaultdict(list)
    counts: dict[float, set[int]] = defaultdict(set)
    splits = args.splits.split(",")
    grid.splits = splits
    with tqdm(total=len(splits) * len(seeds) * len(budgets), unit="run") as bar:
        for split in splits:
            ws = prepare(split_config(config, split, None), progress=False)
            for seed in seeds:
                draws = label_draws(ws, "variance", budgets, seed)
                for k, budget in enumerate(budgets):
                    bar.update()
                    # the bench's label rows and labels (a simulated study's with --raters)
                    rows, views, _ = labelled_views(ws, grid, draws[budget],
                                                    [seed, splits.index(split), k])
                    if rows.size < MIN_LABELS_FOR_ESTIMATE:
                        continue
                    counts[budget].add(int(rows.size))
                    for name, cell in one_run(views[0], train_embedding(ws), rows,
                                              seed).items():
                        cells[(budget, name)].append(cell)
    print("`variance` labels: estimate − test SRCC (mean) / 90 % interval coverage, "
          f"{len(splits)} splits × {len(seeds)} seeds")
    print("| weighting | " + " | ".join(
        f"{budget_label(b)} ({'/'.join(map(str, sorted(counts[b])))})" for b in budgets) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for name in WEIGHTINGS:
        row = []
        for b in budgets:
            runs = np.array(cells.get((b, name), []), dtype=float).reshape(-1, 2)
            row.append(f"{runs[:, 0].mean():+.3f} / {runs[:, 1].mean():.0%}" if runs.size
                       else "—")
        print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
