"""Figures people would rather see than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from leafiqa.calibration.mapping import fit_score_map  # noqa: E402
from leafiqa.evaluation.metrics import plcc, srcc  # noqa: E402


def scatter_plot(pred: np.ndarray, mos: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Prediction against MOS, with y = x and the 4-parameter logistic from prediction to MOS
    fitted on these points (the map behind PLCC*), drawn as MOS → prediction."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.scatter(mos, pred, s=7, alpha=0.5, color="#2b7a3d", edgecolors="none")
    low, high = float(min(mos.min(), pred.min())), float(max(mos.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="y = x")
    fitted = fit_score_map(pred, mos)
    if fitted.kind != "none":
        grid = np.linspace(float(pred.min()), float(pred.max()), 200)
        ax.plot(fitted(grid), grid, color="#c0392b", lw=1.2,
                label=f"fitted {fitted.kind} (PLCC* {plcc(fitted(pred), mos):.3f})")
    ax.set_xlabel("human MOS")
    ax.set_ylabel("LEAF prediction")
    ax.set_title(f"{title}\nSRCC {srcc(pred, mos):.3f} · PLCC {plcc(pred, mos):.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curve_styles(methods: list[str]) -> dict[str, dict]:
    """LEAF in bold black in front, every other method its own colour (matplotlib's default
    cycle has 10 and a study has more methods: the 11th curve was drawn in LEAF's colour)."""
    palette = list(plt.get_cmap("tab20").colors)
    others = [m for m in methods if m != "LEAF"]
    styles = {m: {"color": palette[i % len(palette)], "lw": 1.2} for i, m in enumerate(others)}
    if "LEAF" in methods:
        styles["LEAF"] = {"color": "black", "lw": 2.2, "zorder": 5}
    return styles


def budget_curves(
    table: dict[str, dict[int, tuple[float, float]]],
    path: str | Path,
    metric: str,
    n_train: int,
) -> Path:
    """``table[method][n_labels] = (mean, std)``; a log x axis on which 0 labels is drawn at
    0.5 % of the training images with its own marker (◇). Every curve of a study shares the x
    range, whatever budgets it has."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    zero_at = max(1.0, 0.005 * n_train)
    styles = curve_styles(sorted(table))
    for method, points in sorted(table.items()):
        budgets = sorted(points)
        x = np.array([b if b > 0 else zero_at for b in budgets], dtype=float)
        mean = np.array([points[b][0] for b in budgets])
        std = np.array([points[b][1] for b in budgets])
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=method, **styles[method])
        ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.get_color())
        if budgets and budgets[0] == 0:
            ax.plot([zero_at], [mean[0]], marker="D", ms=7, mfc="white",
                    color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlim(zero_at / 1.6, n_train * 1.6)
    ax.axvline(zero_at * 1.3, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(f"MOS labels (of {n_train} training images; ◇ = 0 labels, drawn at "
                  f"{zero_at:.0f})")
    ax.set_ylabel(metric.upper())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
