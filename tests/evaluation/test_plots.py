from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from leafiqa.evaluation.plots import budget_curves, curve_styles, curves_figure, scatter_figure


def test_every_method_of_a_study_gets_its_own_colour() -> None:
    methods = ["LEAF", *(f"LEAF ablation {i}" for i in range(8)), "linear probe (ridge)",
               "student on labels alone", "teacher alone + logistic"]
    styles = curve_styles(methods)
    colours = [styles[m]["color"] for m in methods]
    assert len(set(colours)) == len(methods)
    assert styles["LEAF"]["color"] == "black"
    assert styles["LEAF"]["lw"] > max(styles[m]["lw"] for m in methods if m != "LEAF")
    # LEAF's ablations are dashed, baselines solid
    assert styles["LEAF ablation 0"]["ls"] != "-" and styles["linear probe (ridge)"]["ls"] == "-"


def test_scatter_has_prediction_on_x_and_the_logistic_maps_prediction_to_mos() -> None:
    rng = np.random.default_rng(0)
    pred = np.linspace(0, 10, 80)
    mos = 1 + 4 / (1 + np.exp(-(pred - 5))) + rng.normal(0, 0.1, pred.size)
    fig = scatter_figure(pred, mos, "toy")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "LEAF prediction" and ax.get_ylabel() == "human MOS"
    points = ax.collections[0].get_offsets()
    assert np.allclose(points[:, 0], pred) and np.allclose(points[:, 1], mos)
    curve = next(line for line in ax.get_lines() if "logistic" in line.get_label())
    x, y = curve.get_data()
    assert x.min() == pred.min() and x.max() == pred.max()  # drawn over the predictions
    assert np.all(np.diff(y) >= 0) and abs(y[0] - 1) < 0.3 and abs(y[-1] - 5) < 0.3
    plt.close(fig)


def test_zero_labels_get_their_own_panel_and_the_legend_sits_outside() -> None:
    table = {m: {0: (0.7, 0.68, 0.72), 24: (0.72, 0.70, 0.74), 240: (0.78, 0.77, 0.79)}
             for m in ["LEAF", "LEAF no correction (map only)", "teacher alone + logistic"]}
    table["linear probe (ridge)"] = {24: (0.6, np.nan, np.nan), 240: (0.8, np.nan, np.nan)}
    fig = curves_figure(table, "srcc", 240)
    zero, main = fig.axes
    assert zero.get_xlabel() == "0 labels" and main.get_xscale() == "log"
    assert len(zero.get_lines()) >= 3  # one marker per method that ran with 0 labels
    assert all(x > 0 for line in main.get_lines() for x in line.get_xdata())  # no invented x
    legend = fig.legends[0]
    assert len(legend.get_texts()) == 4
    fig.canvas.draw()
    box = legend.get_window_extent().transformed(fig.transFigure.inverted())
    assert box.x0 >= main.get_position().x1  # right of the plot, covering nothing
    plt.close(fig)


def test_budget_curves_writes_a_png(tmp_path: Path) -> None:
    table = {m: {0: (0.7, 0.69, 0.71), 24: (0.72, 0.7, 0.74), 240: (0.78, 0.77, 0.79)}
             for m in ["LEAF", *(f"m{i}" for i in range(11))]}
    path = budget_curves(table, tmp_path / "curves.png", "srcc", 2386)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
