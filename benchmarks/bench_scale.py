"""Distillation cost against pool size: the student's ridge head on synthetic pools of n images ×
7,104 features (the default Lite0 224+512 pyramid's width), generated chunk by chunk and never
held whole, so memory shows what the distillation itself holds.

Each size runs in a fresh process (its peak resident memory is its own). Printed per size: wall
time of the distillation (the ridge basis — one pass for the scaler's moments and XᵀX, then the
d×d eigendecomposition — and the leave-one-out fit: a pass for Xᵀy, one for the rows in the
eigenbasis), of which generating the synthetic rows, peak memory, and the growth of time and
memory from the smallest size to each larger one against the growth of n. Sizes not run
(``--extrapolate``) are predicted from the two largest measured ones as time = a + b·n (the
eigendecomposition is the constant; every pass is linear in n) and marked "extrapolated".
CPU time (all threads of the process) is printed beside wall time: on a shared machine the
wall time measures the neighbours as much as the distillation.

    python benchmarks/bench_scale.py --sizes 10000 100000 --extrapolate 1000000
    python benchmarks/bench_scale.py --sizes 10000 --precision float64 float32  # agreement
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from leafiqa.student.backbone import feature_blocks
from leafiqa.student.ridge import FeatureSource, PrimalRidgeBasis, fit_ridge_loo

LATENT = 16


class SyntheticPool:
    """n rows of d features with a low-rank structure (what a quality score can be read from)
    plus noise; chunk i is a function of (seed, i) alone, so any pass regenerates it."""

    def __init__(self, n: int, d: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.d, self.seed = n, d, seed
        self.mix = rng.normal(size=(LATENT, d)).astype(np.float32)
        self.offset = rng.uniform(0.0, 2.0, d).astype(np.float32)
        self.scale = rng.uniform(0.2, 1.0, d).astype(np.float32)
        self.quality = rng.normal(size=LATENT)
        self.generating = 0.0  # seconds spent making rows, not distilling

    def latent(self, start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, start, 0])
        return rng.normal(size=(stop - start, LATENT)).astype(np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        began = time.perf_counter()
        rng = np.random.default_rng([self.seed, start, 1])
        rows = rng.random((stop - start, self.d), dtype=np.float32)
        rows -= 0.5
        rows *= self.scale
        rows += self.latent(start, stop) @ self.mix * 0.1 + self.offset
        self.generating += time.perf_counter() - began
        return rows

    def targets(self, chunk_rows: int) -> np.ndarray:
        y = np.concatenate([self.latent(a, min(a + chunk_rows, self.n)) @ self.quality
                            for a in range(0, self.n, chunk_rows)])
        y += np.random.default_rng([self.seed, 2]).normal(scale=0.5, size=self.n)
        return (y - y.mean()) / y.std()


def run_one(n: int, d: int, precision: str, chunk_rows: int) -> dict:
    pool = SyntheticPool(n, d)
    source = FeatureSource(n, d, pool.read, chunk_rows)
    targets = pool.targets(chunk_rows)
    reliability = np.random.default_rng(5).uniform(0.3, 1.0, n)  # the judgments' weights
    blocks = feature_blocks("efficientnet-lite0", 2) if d == 7104 else None
    start, cpu_start = time.perf_counter(), time.process_time()
    basis = PrimalRidgeBasis.fit(source, None, reliability, np.dtype(precision).type, blocks)
    basis_seconds = time.perf_counter() - start
    fit = fit_ridge_loo(basis, targets)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "d": d, "precision": precision, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "basis_seconds": basis_seconds,
            "generating_seconds": pool.generating,
            "peak_mb": peak_mb, "alpha": fit.alpha, "loo_error": fit.loo_error,
            "coef_head": fit.coef[:64].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--features", type=int, default=7104)
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=["float32", "float64"])
    parser.add_argument("--chunk-rows", type=int, default=2048)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.features, args.precision[0], args.chunk_rows)))
        return
    results: list[dict] = []
    print(f"{'n':>9} {'precision':>9} {'wall s':>8} {'CPU s':>8} {'basis s':>8} {'gen s':>7} "
          f"{'peak MB':>8} {'α':>9} {'LOO MSE':>9}")
    for precision in args.precision:
        for n in args.sizes:
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--features", str(args.features),
                 "--precision", precision, "--chunk-rows", str(args.chunk_rows)],
                capture_output=True, text=True, check=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(row)
            print(f"{n:>9} {precision:>9} {row['seconds']:8.1f} {row['cpu_seconds']:8.1f} "
                  f"{row['basis_seconds']:8.1f} "
                  f"{row['generating_seconds']:7.1f} {row['peak_mb']:8.0f} {row['alpha']:9.3g} "
                  f"{row['loo_error']:9.5f}", flush=True)
    for precision in args.precision:
        rows = sorted((r for r in results if r["precision"] == precision), key=lambda r: r["n"])
        for row in rows[1:]:
            base = rows[0]
            print(f"{precision}: {base['n']} → {row['n']} images (×{row['n'] / base['n']:.0f}): "
                  f"time ×{row['seconds'] / base['seconds']:.2f}, "
                  f"CPU time ×{row['cpu_seconds'] / base['cpu_seconds']:.2f}, "
                  f"time without generating ×"
                  f"{(row['seconds'] - row['generating_seconds']) / max(base['seconds'] - base['generating_seconds'], 1e-9):.2f}, "  # noqa: E501
                  f"peak memory ×{row['peak_mb'] / base['peak_mb']:.2f}")
        if len(rows) >= 2 and args.extrapolate:
            low, high = rows[-2], rows[-1]
            for measure in ("seconds", "cpu_seconds"):
                slope = (high[measure] - low[measure]) / (high["n"] - low["n"])
                constant = high[measure] - slope * high["n"]
                for n in args.extrapolate:
                    print(f"{precision}: {n} images: ≈ {constant + slope * n:.0f} "
                          f"{'wall' if measure == 'seconds' else 'CPU'} s (extrapolated, "
                          f"a + b·n through {low['n']} and {high['n']}: a = {constant:.0f} s, "
                          f"b = {slope * 1000:.2f} s per 1,000 images)")
    by_n: dict[int, dict[str, dict]] = {}
    for row in results:
        by_n.setdefault(row["n"], {})[row["precision"]] = row
    for n, pair in by_n.items():
        if len(pair) == 2:
            a, b = pair["float64"], pair["float32"]
            difference = np.max(np.abs(np.subtract(a["coef_head"], b["coef_head"])))
            scale = np.max(np.abs(a["coef_head"]))
            print(f"{n}: float32 against float64: α {b['alpha']:.3g} vs {a['alpha']:.3g}, "
                  f"LOO MSE {b['loo_error']:.6f} vs {a['loo_error']:.6f}, coefficients differ "
                  f"by ≤ {difference / scale:.1e} of their largest")


if __name__ == "__main__":
    main()
