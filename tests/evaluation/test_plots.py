from __future__ import annotations

from pathlib import Path

from leafiqa.evaluation.plots import budget_curves, curve_styles


def test_every_method_of_a_study_gets_its_own_colour() -> None:
    methods = ["LEAF", *(f"LEAF ablation {i}" for i in range(8)), "linear probe (ridge)",
               "student on labels alone", "teacher alone + logistic"]
    styles = curve_styles(methods)
    colours = [tuple(styles[m]["color"]) if not isinstance(styles[m]["color"], str)
               else styles[m]["color"] for m in methods]
    assert len(set(colours)) == len(methods)
    assert styles["LEAF"]["lw"] > max(styles[m]["lw"] for m in methods if m != "LEAF")


def test_budget_curves_writes_a_png(tmp_path: Path) -> None:
    table = {m: {0: (0.7, 0.01), 24: (0.72, 0.02), 240: (0.78, 0.01)}
             for m in ["LEAF", *(f"m{i}" for i in range(11))]}
    path = budget_curves(table, tmp_path / "curves.png", "srcc", 2386)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
