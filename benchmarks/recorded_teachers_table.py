"""The AGIQA-3K table for recorded MLLM teachers, from two `leaf bench` runs:

    leaf bench configs/demo.yaml       # LEAF with InternLM-XComposer-VL, baselines
    leaf bench configs/ensemble.yaml   # LEAF with the 15-teacher ensemble, each teacher alone
    python benchmarks/recorded_teachers_table.py runs/demo/bench runs/ensemble/bench

(`make table-recorded` runs all three.) Cells: test SRCC / PLCC, mean±std over split_1 … split_5
× 3 label draws; random label selection.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def cell(row: pd.Series) -> str:
    srcc = f"{row.srcc_mean:.3f}±{np.nan_to_num(row.srcc_std):.3f}"
    if np.isnan(row.plcc_mean):
        return srcc
    return f"{srcc} / {row.plcc_mean:.3f}±{np.nan_to_num(row.plcc_std):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("single", type=Path, help="bench folder of configs/demo.yaml")
    parser.add_argument("ensemble", type=Path, help="bench folder of configs/ensemble.yaml")
    args = parser.parse_args()
    single = pd.read_csv(args.single / "bench-summary.csv")
    ensemble = pd.read_csv(args.ensemble / "bench-summary.csv")
    single, ensemble = (t[t["selection"] == "random"] for t in (single, ensemble))
    rows = [
        ("LEAF, teacher InternLM-XComposer-VL", single, "LEAF"),
        ("LEAF, teacher 15-MLLM ensemble", ensemble, "LEAF"),
        ("student on labels alone", single, "student on labels alone"),
        ("linear probe (ridge) on labels alone", single, "linear probe (ridge)"),
        ("15-MLLM ensemble alone + logistic", ensemble, "teacher alone + logistic"),
    ]
    alone = sorted(m for m in ensemble["method"].unique() if m.startswith("alone: "))
    rows += [(m.replace("alone: qbench:", "") + " alone + logistic", ensemble, m) for m in alone]
    budgets = sorted(single["budget"].unique())
    labels = ["0" if b == 0 else f"{b:.0%}" for b in budgets]
    print("| method | " + " | ".join(f"{b} labels" for b in labels) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for title, table, method in rows:
        cells = []
        for budget in budgets:
            match = table[(table["method"] == method) & (table["budget"] == budget)]
            cells.append(cell(match.iloc[0]) if len(match) else "—")
        print(f"| {title} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
