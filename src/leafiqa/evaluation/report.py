"""The bench's outputs: tidy CSVs, Markdown tables, PNG curves, a provenance record and one
self-contained HTML page.

Cells are the mean over the runs (splits × seeds) with a 95 % bootstrap interval of that mean
(see ``evaluation.stats``); a grid of one run per cell (``--quick``) shows plain values and says
once that it has no intervals, rather than marking every cell."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leafiqa.evaluation import provenance as provenance_block
from leafiqa.evaluation.plots import budget_curves, scatter_plot
from leafiqa.evaluation.stats import CONFIDENCE, RESAMPLES, add_intervals, paired_tests

METRICS = ("srcc", "krcc", "plcc", "plcc_fitted", "rmse")


@dataclass
class BenchReport:
    rows: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    csv: Path
    html: Path
    seconds: float
    provenance: Path | None = None


def summarise(rows: pd.DataFrame,
              by: tuple[str, ...] = ("selection", "method", "budget")) -> pd.DataFrame:
    """One row per cell: every run of a budget, whatever its label count (splits of 433 and 434
    training images give a fraction 433 or 434 labels: one cell, its median count)."""
    grouped = rows.groupby(list(by), sort=True)
    summary = grouped[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{m}_{s}" for m, s in summary.columns]
    summary["n_labels"] = grouped["n_labels"].median().round().astype(int)
    summary["seconds_mean"] = grouped["seconds"].mean()
    summary["runs"] = grouped.size()
    return add_intervals(summary.reset_index(), rows, list(by), METRICS)


def budget_label(budget: float) -> str:
    if budget == 0:
        return "0"
    return f"{budget:.0%}" if budget <= 1 else str(int(budget))


def format_cell(mean: float, low: float = float("nan"), high: float = float("nan")) -> str:
    """``mean [low, high]``, or the bare mean where there is no interval (one run)."""
    if np.isnan(mean):
        return ""
    if np.isnan(low) or np.isnan(high):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def interval_note(summary: pd.DataFrame) -> str:
    """What a table's cells are, said once."""
    runs = sorted(set(int(r) for r in summary["runs"]))
    if runs == [1]:
        return ("One run per cell (a single split and seed, as with --quick): plain values, no "
                "interval and no test. Run the full grid for both.")
    counts = "/".join(str(r) for r in runs)
    return (f"Cells: mean over {counts} runs (splits × seeds) [{CONFIDENCE:.0%} interval: "
            f"percentile bootstrap of the mean across those runs, {RESAMPLES} resamples; with "
            "few runs it is narrow and optimistic]. Images are not resampled.")


def method_budget_table(summary: pd.DataFrame, selection: str, cell) -> str:  # noqa: ANN001
    """Methods × budgets as Markdown; ``cell(summary row)`` fills each cell ("—": no run)."""
    table = summary[summary["selection"] == selection]
    budgets = sorted(table["budget"].unique())
    lines = ["| method | " + " | ".join(f"{budget_label(b)} labels" for b in budgets) + " |",
             "|---" * (len(budgets) + 1) + "|"]
    for method in table["method"].unique():
        cells = []
        for budget in budgets:
            row = table[(table["method"] == method) & (table["budget"] == budget)]
            cells.append("—" if row.empty else cell(row.iloc[0]))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(summary: pd.DataFrame, selection: str = "random",
                   metrics: tuple[str, ...] = ("srcc", "plcc")) -> str:
    """Methods × budgets; each cell ``metric1 / metric2`` (metrics missing at 0 labels drop)."""

    def cell(r: pd.Series) -> str:
        parts = [format_cell(r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"]) for m in metrics]
        return " / ".join(p for p in parts if p)

    return method_budget_table(summary, selection, cell)


def per_split_table(rows: pd.DataFrame, budget: float, selection: str = "random") -> str:
    """SRCC of every method on every split at one budget (mean over seeds)."""
    picked = rows[(rows["budget"] == budget) & (rows["selection"] == selection)]
    if picked.empty:
        return ""
    pivot = picked.groupby(["method", "split"])["srcc"].mean().unstack("split")
    splits = list(pivot.columns)
    lines = ["| method | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for method, values in pivot.iterrows():
        lines.append(f"| {method} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def paired_table(rows: pd.DataFrame, selection: str, metric: str = "srcc") -> str:
    """LEAF against the strongest other method (not a LEAF ablation) at each budget."""
    tests = [t for t in paired_tests(rows, metric) if t.selection == selection]
    if not tests:
        return ""
    lines = [f"| labels | LEAF {metric.upper()} | strongest other | its {metric.upper()} | "
             "LEAF − other (paired) | pairs | Wilcoxon p | note |", "|---" * 8 + "|"]
    for t in tests:
        p = "—" if np.isnan(t.p_value) else f"{t.p_value:.3g}"
        difference = "—" if np.isnan(t.difference) else f"{t.difference:+.3f}"
        labels = "0" if t.n_labels == 0 else f"{budget_label(t.budget)} ({t.n_labels})"
        lines.append(f"| {labels} | {t.leaf:.3f} | {t.rival} | "
                     f"{t.rival_mean:.3f} | {difference} | {t.pairs} | {p} | {t.note} |")
    return "\n".join(lines)


TEST_NOTE = ("Paired test: LEAF against the method other than LEAF's own ablations with the "
             "highest mean at that budget, over the runs both share (same split, seed and label "
             "draw); two-sided Wilcoxon signed-rank test (scipy), no correction for the several "
             "budgets tested.")


def markdown_to_html(markdown: str) -> str:
    lines = [line for line in markdown.splitlines() if line and not line.startswith("|---")]
    if not lines:
        return ""
    cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _embed(path: Path, css: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    kind = f' class="{css}"' if css else ""
    return f'<img{kind} alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>LEAF label-budget study</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:3px 6px}} th{{background:#f3f6f3}}
img{{max-width:100%}} .meta td{{border:none;vertical-align:top}} .note{{color:#555;font-size:14px}}
pre{{font-size:12px;background:#f6f8fa;padding:.6em;overflow:auto}}
.plots img{{display:block;margin:.5em 0}} .scatter{{max-width:520px}}</style></head><body>
<h1>LEAF label-budget study</h1>
<table class="meta">
<tr><td>Data</td><td><b>{dataset}</b>, {n_train} training images per split</td></tr>
<tr><td>Teacher</td><td><b>{teacher}</b></td></tr>
<tr><td>Runs</td><td>splits {splits} × seeds {seeds}</td></tr>
<tr><td>Wall time</td><td>{seconds:.0f} s</td></tr></table>
<p class="note">{interval_note} PLCC and RMSE are of the predictions as calibrated on the
training labels; PLCC* after a 4-parameter logistic fitted on the test set (VQEG). With 0 labels
there is no map onto MOS and only rank metrics are reported; the curves draw 0 labels in a panel
of their own.</p>
{tests}
<h2>Curves (label selection: {first_selection})</h2><div class="plots">{plots}</div>
{weights}
{sections}
{provenance}
</body></html>"""


def write_report(rows: pd.DataFrame, out: Path, *, teacher: str, dataset: str, n_train: int,
                 seconds: float, splits: list[str], seeds: list[int], selections: list[str],
                 scatter: tuple[np.ndarray, np.ndarray, int] | None = None,
                 teacher_weights: list[dict] | None = None,
                 provenance: dict | None = None) -> BenchReport:
    """``provenance`` (``evaluation.provenance.collect``): written to provenance.json and shown
    at the end of bench.md and report.html."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "bench.csv"
    rows.to_csv(csv_path, index=False)
    summary = summarise(rows)
    summary.to_csv(out / "bench-summary.csv", index=False)
    note = interval_note(summary)
    interval = ("band: 95 % bootstrap interval of the mean across runs"
                if (summary["runs"] > 1).any() else "one run per point: no interval")
    first = summary[summary["selection"] == selections[0]]
    plots = [budget_curves(_curve_table(first, metric), out / f"budget-{metric}.png", metric,
                           n_train, interval) for metric in ("srcc", "plcc")]
    embedded = "".join(_embed(p) for p in plots)
    if scatter is not None:
        pred, mos, n_labels = scatter
        shot = scatter_plot(pred, mos, out / "scatter-leaf.png",
                            f"LEAF, {n_labels} labels, {splits[0]}", calibrated=n_labels >= 2)
        embedded += _embed(shot, "scatter")
    tests = {s: paired_table(rows, s) for s in selections}
    markdown = "\n\n".join(
        f"### label selection: {s} (cells: SRCC / PLCC)\n\n{markdown_table(summary, s)}"
        + (f"\n\n#### LEAF against the strongest other method (SRCC)\n\n{tests[s]}"
           if tests[s] else "") for s in selections)
    markdown = f"{note}\n\n{markdown}"
    if any(tests.values()):
        markdown += f"\n\n{TEST_NOTE}"
    provenance_path = None
    if provenance is not None:
        provenance_path = provenance_block.write_json(provenance, out)
        (out / "bench.md").write_text(markdown + "\n\n" + provenance_block.markdown(provenance)
                                      + "\n")
    else:
        (out / "bench.md").write_text(markdown + "\n")
    sections = []
    for selection in selections:
        sections.append(f"<h2>Label selection: {selection}</h2>"
                        f"<h3>SRCC / KRCC</h3>"
                        + markdown_to_html(markdown_table(summary, selection, ("srcc", "krcc")))
                        + "<h3>PLCC / RMSE (calibrated) · PLCC*</h3>"
                        + markdown_to_html(markdown_table(summary, selection,
                                                          ("plcc", "rmse", "plcc_fitted"))))
        sections.append("<h3>Seconds per run (mean)</h3>"
                        + markdown_to_html(_seconds_table(summary, selection)))
    budgets = sorted(rows["budget"].unique())
    middle = min(budgets, key=lambda b: abs(b - 0.1))
    sections.append(f"<h2>Per split (SRCC at {budget_label(middle)} labels, "
                    f"{selections[0]} selection, mean over seeds)</h2>"
                    + markdown_to_html(per_split_table(rows, middle, selections[0])))
    weights = ""
    if teacher_weights:
        weights = "<h2>Ensemble member weights (before labels)</h2>" + markdown_to_html(
            "| teacher | agreement with the others | weight |\n|---|---|---|\n" + "\n".join(
                f"| {w['teacher_id']} | {w['consensus_correlation']:.3f} | {w['weight']:.3f} |"
                for w in sorted(teacher_weights, key=lambda w: -w["weight"])))
    tests_html = "".join(
        f"<h2>LEAF against the strongest other method (SRCC, {selection} selection)</h2>"
        + markdown_to_html(table) for selection, table in tests.items() if table)
    if tests_html:
        tests_html += f'<p class="note">{html.escape(TEST_NOTE)}</p>'
    page = out / "report.html"
    page.write_text(PAGE.format(
        dataset=html.escape(dataset), n_train=n_train, teacher=html.escape(teacher),
        splits=html.escape(", ".join(splits)), seeds=seeds, seconds=seconds, weights=weights,
        first_selection=selections[0], plots=embedded, interval_note=html.escape(note),
        tests=tests_html,
        sections="".join(sections),
        provenance=provenance_block.html_block(provenance) if provenance else ""))
    return BenchReport(rows, summary, markdown, csv_path, page, seconds, provenance_path)


def _curve_table(summary: pd.DataFrame, metric: str) -> dict[str, dict[int, tuple[float, float,
                                                                                   float]]]:
    table: dict[str, dict[int, tuple[float, float, float]]] = {}
    for _, r in summary.iterrows():
        if r.method.startswith("alone: ") or np.isnan(r[f"{metric}_mean"]):
            continue
        table.setdefault(r.method, {})[int(r.n_labels)] = (
            r[f"{metric}_mean"], r[f"{metric}_low"], r[f"{metric}_high"])
    return table


def _seconds_table(summary: pd.DataFrame, selection: str) -> str:
    return method_budget_table(summary, selection, lambda r: f"{r.seconds_mean:.2f}")
