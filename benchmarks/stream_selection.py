"""Does the streamed PCA embedding pick the same labels as the in-memory one on a real pool?

For each config: its workspace (features from the cache), the training images' embedding from
the whole matrix (``embed(array)``) and streamed chunk by chunk (``embed(FeatureSource)``),
and the ``kcenter`` / ``variance`` selections at several budgets from each. Prints how far the
embeddings differ (up to each axis's sign) and whether every selection is the same. Also
prints the largest single read of the streamed pass and how long each took.

    PYTHONPATH=src nice python benchmarks/stream_selection.py configs/clive.yaml configs/demo.yaml
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from leafiqa.config import load_config
from leafiqa.data.splits import labelled_rows
from leafiqa.experiments.workspace import label_count, prepare
from leafiqa.labelling.designs import embed, select_order
from leafiqa.student.ridge import FeatureSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.25])
    parser.add_argument("--chunk-rows", type=int, default=512)
    args = parser.parse_args()
    for path in args.configs:
        ws = prepare(load_config(path), progress=False)
        start = time.perf_counter()
        whole = embed(ws.feature_source.subset(ws.train_rows).array())
        in_memory_s = time.perf_counter() - start
        reads: list[int] = []
        base = ws.feature_source

        def read(a: int, b: int, base: FeatureSource = base,
                 reads: list[int] = reads) -> np.ndarray:
            reads.append(b - a)
            return base.read(a, b)

        source = FeatureSource(base.n_rows, base.n_features, read, args.chunk_rows)
        start = time.perf_counter()
        streamed = embed(source.subset(ws.train_rows))
        streamed_s = time.perf_counter() - start
        signs = np.sign((whole * streamed).sum(axis=0))
        gap = float(np.abs(whole - streamed * signs).max() / np.abs(whole).max())
        print(f"{path}: {ws.train_rows.size} training images × {base.n_features} features; "
              f"embedding relative max difference {gap:.2e} (in memory {in_memory_s:.1f} s, "
              f"streamed {streamed_s:.1f} s, largest read {max(reads)} rows)")
        train_mos = ws.mos[ws.train_rows]
        pool = labelled_rows(train_mos)
        teacher = ws.teacher_scores[ws.train_rows][pool]
        for strategy in ("kcenter", "variance"):
            for budget in args.budgets:
                n = label_count(budget, pool.size)
                picks = [select_order(pool.size, n, strategy=strategy, teacher_scores=teacher,
                                      embedding=z[pool], seed=0) for z in (whole, streamed)]
                same = np.array_equal(picks[0], picks[1])
                print(f"  {strategy:8s} {n:5d} labels: "
                      f"{'same selection, same order' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
