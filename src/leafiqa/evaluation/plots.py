"""Figures people would rather see than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from leafiqa.evaluation.metrics import plcc, srcc  # noqa: E402


def scatter_plot(pred: np.ndarray, mos: np.ndarray, path: str | Path, title: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.scatter(mos, pred, s=7, alpha=0.5, color="#2b7a3d", edgecolors="none")
    low, high = float(min(mos.min(), pred.min())), float(max(mos.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1, ls="--", label="y = x")
    ax.set_xlabel("human MOS")
    ax.set_ylabel("LEAF prediction")
    ax.set_title(f"{title}\nSRCC {srcc(pred, mos):.3f} · PLCC {plcc(pred, mos):.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def budget_curves(
    table: dict[str, dict[int, tuple[float, float]]],
    path: str | Path,
    metric: str,
    n_train: int,
) -> Path:
    """``table[method][n_labels] = (mean, std)``; a log x axis (0 labels drawn at 1 %·n/2)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    zero_at = max(1.0, 0.005 * n_train)
    for method, points in sorted(table.items()):
        budgets = sorted(points)
        x = np.array([b if b > 0 else zero_at for b in budgets], dtype=float)
        mean = np.array([points[b][0] for b in budgets])
        std = np.array([points[b][1] for b in budgets])
        ax.plot(x, mean, marker="o", ms=3, label=method)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel(f"MOS labels (of {n_train} training images; 0 labels drawn at {zero_at:.0f})")
    ax.set_ylabel(metric.upper())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
