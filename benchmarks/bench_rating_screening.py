"""How well rater screening recovers a known MOS: simulated studies on clive-dev's MOS and
per-image std (mapped onto the 1..5 ACR scale), raters with their own bias and noise, and a
share of careless raters (half random buttons, half one button). Prints mean RMSE / SRCC / PLCC
to the true quality per method and how many careless raters each kept.

    PYTHONPATH=src python benchmarks/bench_rating_screening.py [--seeds 20]
        [--data ../shared/data/clive-dev]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from leafiqa.ratings.simulate import Simulation, compare, to_acr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/clive-dev"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--raters", type=int, default=12)
    args = parser.parse_args()
    frame = pd.read_csv(args.data / "data.csv")
    truth, spread = to_acr(frame["mos"].to_numpy(), frame["std"].to_numpy(), 0.0, 100.0)
    print(f"{args.data.name}: {len(frame)} images; {args.images} rated + 4 gold per study, "
          f"{args.raters} raters, 3 repeats each, {args.seeds} studies per row")
    print(f"{'careless':>8}  {'method':<20} {'RMSE':>6} {'SRCC':>6} {'PLCC':>6} "
          f"{'careless kept':>13} {'honest kept':>11}")
    for careless in (0.0, 0.1, 0.25, 0.4):
        sim = Simulation(images=args.images, raters=args.raters, careless=careless)
        for name, figures in compare(truth, spread, sim, args.seeds).items():
            print(f"{careless:>8.0%}  {name:<20} {figures['rmse']:>6.3f} {figures['srcc']:>6.3f} "
                  f"{figures['plcc']:>6.3f} {figures['careless kept']:>13.0%} "
                  f"{figures['honest kept']:>11.0%}")


if __name__ == "__main__":
    main()
