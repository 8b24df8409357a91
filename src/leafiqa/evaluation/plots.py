"""Figures people would rather see than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from leafiqa.calibration.mapping import fit_score_map  # noqa: E402
from leafiqa.evaluation.metrics import plcc, srcc  # noqa: E402


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def scatter_plot(pred: np.ndarray, mos: np.ndarray, path: str | Path, title: str = "",
                 calibrated: bool = True) -> Path:
    return save(scatter_figure(pred, mos, title, calibrated), path)


def scatter_figure(pred: np.ndarray, mos: np.ndarray, title: str = "",
                   calibrated: bool = True) -> Figure:
    """MOS (y) against the prediction (x), the IQA convention, with the 4-parameter logistic
    from prediction to MOS fitted on these points (the map behind PLCC*) and, for predictions
    already calibrated onto the MOS scale, y = x."""
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    fig, ax = plt.subplots(figsize=(5.4, 5))
    ax.scatter(pred, mos, s=8, alpha=0.55, color="#2b7a3d", edgecolors="none",
               label=f"test images (n={pred.size})")
    if calibrated:
        low, high = float(min(mos.min(), pred.min())), float(max(mos.max(), pred.max()))
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="y = x")
    fitted = fit_score_map(pred, mos)
    if fitted.kind != "none":
        grid = np.linspace(float(pred.min()), float(pred.max()), 200)
        ax.plot(grid, fitted(grid), color="#c0392b", lw=1.4,
                label=f"fitted {fitted.kind} (PLCC* {plcc(fitted(pred), mos):.3f})")
    ax.set_xlabel("LEAF prediction" + ("" if calibrated else " (uncalibrated)"))
    ax.set_ylabel("human MOS")
    ax.set_title(f"{title}\nSRCC {srcc(pred, mos):.3f} · PLCC {plcc(pred, mos):.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


LEAF = "LEAF"
# colour-blind-safe Okabe–Ito hues first (less its black and yellow), then tab10's others
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C564B",
           "#9467BD", "#7F7F7F", "#BCBD22", "#17BECF", "#AD494A", "#393B79", "#637939"]


def curve_styles(methods: list[str]) -> dict[str, dict]:
    """LEAF in thick black in front; every other method its own colour, baselines in solid
    lines and LEAF's ablations ("LEAF …") in thinner dashed ones, so the two families read
    apart even where colours are close."""
    others = [m for m in methods if m != LEAF]
    baselines = [m for m in others if not m.startswith(LEAF)]
    ablations = [m for m in others if m.startswith(LEAF)]
    styles: dict[str, dict] = {}
    for index, method in enumerate(baselines + ablations):
        dashed = method in ablations
        styles[method] = {"color": PALETTE[index % len(PALETTE)], "lw": 1.1 if dashed else 1.5,
                          "ls": (0, (4, 2)) if dashed else "-",
                          "marker": "o" if not dashed else "s", "ms": 3.5, "zorder": 3}
    if LEAF in methods:
        styles[LEAF] = {"color": "black", "lw": 2.6, "ls": "-", "marker": "o", "ms": 5,
                        "zorder": 6}
    return styles


Curve = dict[int, tuple[float, float, float]]  # n_labels → (mean, low, high)


def budget_curves(table: dict[str, Curve], path: str | Path, metric: str, n_train: int,
                  interval: str = "band: 95 % interval") -> Path:
    return save(curves_figure(table, metric, n_train, interval), path)


def curves_figure(table: dict[str, Curve], metric: str, n_train: int,
                  interval: str = "band: 95 % interval") -> Figure:
    """``table[method][n_labels] = (mean, low, high)``: the mean over runs with its interval
    as a band (none where low/high are NaN). Budgets above 0 on a log axis; 0 labels, which a
    log axis cannot place, in a panel of its own on the left, sharing the y axis. The legend
    sits outside, to the right."""
    has_zero = any(0 in points for points in table.values())
    fig, axes = plt.subplots(1, 2 if has_zero else 1, sharey=True, figsize=(9.5, 4.6),
                             gridspec_kw={"width_ratios": [1, 7]} if has_zero else None,
                             squeeze=False)
    zero_ax, ax = (axes[0][0], axes[0][1]) if has_zero else (None, axes[0][0])
    styles = curve_styles(sorted(table))
    order = sorted(table, key=lambda m: (m != LEAF, m.startswith(LEAF), m))
    zero_methods = [m for m in order if 0 in table[m]]
    for method in order:
        points, style = table[method], styles[method]
        budgets = [b for b in sorted(points) if b > 0]
        if budgets:
            x = np.array(budgets, dtype=float)
            mean, low, high = (np.array([points[b][k] for b in budgets]) for k in range(3))
            ax.plot(x, mean, label=method, **style)
            if not np.isnan(low).all():
                ax.fill_between(x, low, high, alpha=0.12 if method != LEAF else 0.2,
                                color=style["color"], lw=0)
        if zero_ax is not None and 0 in points:
            at_zero, zero_low, zero_high = points[0]
            slot = zero_methods.index(method)
            # clipped at 0: a bound a float off the mean must not stop the report
            error = None if np.isnan(zero_low) else [[max(at_zero - zero_low, 0.0)],
                                                     [max(zero_high - at_zero, 0.0)]]
            zero_ax.errorbar([slot], [at_zero], yerr=error, color=style["color"],
                             marker=style["marker"], ms=style["ms"] + 1, capsize=2,
                             lw=1.2, zorder=style["zorder"],
                             label=None if budgets else method)
    ax.set_xscale("log")
    ticks = sorted({b for points in table.values() for b in points if b > 0})
    ax.set_xticks(ticks, [f"{b}\n({b / n_train:.0%})" for b in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if ticks:
        ax.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)
    ax.set_xlabel(f"MOS labels (of {n_train} training images, log scale)")
    ax.grid(alpha=0.3)
    if zero_ax is not None:
        zero_ax.set_xlim(-0.8, len(zero_methods) - 0.2)
        zero_ax.set_xticks([])
        zero_ax.set_xlabel("0 labels")
        zero_ax.grid(alpha=0.3, axis="y")
        zero_ax.set_ylabel(metric.upper())
        zero_ax.set_title("no labels", fontsize=8)
    else:
        ax.set_ylabel(metric.upper())
    ax.set_title(f"{metric.upper()}: mean over runs; {interval}", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    if zero_ax is not None:
        more = zero_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8,
               frameon=False)
    fig.tight_layout()
    return fig
