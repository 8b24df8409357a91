"""``leaf bench``: the label-budget study — methods × label budgets × label selection × splits ×
seeds — with a tidy CSV, a Markdown table, PNG curves and one self-contained HTML report.

Distillation does not depend on labels, so each LEAF variant is distilled once per (split,
seed) and fine-tuned for every budget; features and judgments come from the caches."""

from __future__ import annotations

import base64
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from leafiqa.calibration.selection import select_labels
from leafiqa.config import RunConfig
from leafiqa.evaluation.metrics import evaluate
from leafiqa.evaluation.plots import budget_curves, scatter_plot
from leafiqa.pipeline import (
    MethodResult,
    Workspace,
    label_count,
    prepare,
    run_labels_only,
    run_leaf,
    run_linear_probe,
    run_teacher_alone,
)
from leafiqa.student.distill import distill_head

LEAF_VARIANTS = {
    "LEAF": {},
    "LEAF point-wise only": {"pair_weight": 0.0},
    "LEAF pair-wise only": {"point_weight": 0.0},
    "LEAF no reliability weighting": {"use_reliability": False},
}
BASELINES = ("student on labels alone", "teacher alone + logistic", "linear probe (ridge)")


@dataclass
class BenchGrid:
    splits: list[str] = field(default_factory=lambda: [f"split_{i}" for i in range(1, 6)])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: list[float] = field(default_factory=lambda: [0, 0.01, 0.05, 0.1, 0.3, 1.0])
    methods: list[str] = field(default_factory=lambda: [*LEAF_VARIANTS, *BASELINES])
    selections: list[str] = field(default_factory=lambda: ["random", "spread"])
    ablation_selections: list[str] = field(default_factory=lambda: ["random"])
    limit: int | None = None
    # more teachers to report "alone + logistic" on the same label draws (e.g. every recorded
    # MLLM): teacher specs, judged into the same store
    teachers_alone: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, values: dict, quick: bool) -> BenchGrid:
        grid = cls(**{k: v for k, v in values.items() if k in {f.name for f in
                                                                  dataclasses.fields(cls)}})
        if quick:
            grid.splits, grid.seeds = grid.splits[:1], grid.seeds[:1]
            grid.budgets = [0, 0.1, 1.0]
            grid.selections = ["random"]
        return grid


@dataclass
class BenchReport:
    rows: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    csv: Path
    html: Path
    seconds: float


def _methods_for(grid: BenchGrid, selection: str) -> list[str]:
    return [m for m in grid.methods
            if m == "LEAF" or m in BASELINES or selection in grid.ablation_selections]


def _evaluate_cell(ws: Workspace, result: MethodResult, n_labels: int) -> dict:
    metrics = evaluate(result.predictions, ws.mos[ws.test_rows], calibrated=n_labels >= 2)
    if n_labels < 2:  # no map onto MOS: only rank metrics are meaningful
        metrics.update(plcc=float("nan"), plcc_fitted=float("nan"), rmse=float("nan"))
    return metrics


def run_split_seed(ws: Workspace, grid: BenchGrid, split: str, seed: int, bar: tqdm,
                   best: dict) -> list[dict]:
    config = ws.config
    rows: list[dict] = []
    n_train = ws.train_rows.size
    x_train = ws.features[ws.train_rows]
    targets = ws.targets(ws.train_rows)
    distilled = {}
    for name, change in LEAF_VARIANTS.items():
        if name in grid.methods:
            cfg = dataclasses.replace(config.distill, seed=seed, **change)
            distilled[name] = (distill_head(x_train, targets, cfg), cfg)
    teacher_train = ws.teacher_scores[ws.train_rows]
    for selection in grid.selections:
        for budget in grid.budgets:
            n_labels = label_count(budget, n_train)
            label_rows = select_labels(n_train, n_labels, strategy=selection,
                                       teacher_scores=teacher_train, seed=seed)
            for teacher_id, scores in ws_alone(ws).items():
                result = run_teacher_alone(ws, label_rows, scores, f"alone: {teacher_id}")
                metrics = _evaluate_cell(ws, result, n_labels)
                rows.append({"split": split, "seed": seed, "selection": selection,
                             "budget": budget, "n_labels": n_labels, "method": result.method,
                             **metrics, "seconds": 0.0})
            for method in _methods_for(grid, selection):
                bar.set_postfix_str(f"{split} s{seed} {selection} {n_labels} {method[:18]}")
                if n_labels < 2 and method in ("student on labels alone", "linear probe (ridge)"):
                    bar.update(1)
                    continue
                if method in distilled:
                    head, cfg = distilled[method]
                    result = run_leaf(ws, label_rows, cfg, distilled=head, name=method)
                elif method == "student on labels alone":
                    result = run_labels_only(ws, label_rows, config.distill.hidden,
                                             config.distill.dropout)
                elif method == "teacher alone + logistic":
                    result = run_teacher_alone(ws, label_rows)
                else:
                    result = run_linear_probe(ws, label_rows)
                metrics = _evaluate_cell(ws, result, n_labels)
                rows.append({"split": split, "seed": seed, "selection": selection,
                             "budget": budget, "n_labels": n_labels, "method": method,
                             **metrics, "seconds": round(result.seconds, 2)})
                if method == "LEAF" and selection == "random" and split == grid.splits[0] and (
                        seed == grid.seeds[0]) and abs(budget - 0.1) < 1e-9:
                    best["LEAF"] = (result.predictions, ws.mos[ws.test_rows], n_labels)
                bar.update(1)
    return rows


def _cell_count(grid: BenchGrid) -> int:
    per = sum((len(_methods_for(grid, s)) + len(grid.teachers_alone)) * len(grid.budgets)
              for s in grid.selections)
    return per * len(grid.splits) * len(grid.seeds)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    metrics = ["srcc", "krcc", "plcc", "plcc_fitted", "rmse"]
    grouped = rows.groupby(["selection", "method", "budget", "n_labels"], sort=True)
    summary = grouped[metrics].agg(["mean", "std"])
    summary.columns = [f"{m}_{s}" for m, s in summary.columns]
    summary["runs"] = grouped.size()
    return summary.reset_index()


def markdown_table(summary: pd.DataFrame, selection: str = "random") -> str:
    table = summary[summary["selection"] == selection]
    budgets = sorted(table["budget"].unique())
    header = "| method | " + " | ".join(
        f"{'0' if b == 0 else (f'{b:.0%}' if b < 1 or b == 1.0 else int(b))} labels"
        for b in budgets) + " |"
    lines = [header, "|---" * (len(budgets) + 1) + "|"]
    for method in table["method"].unique():
        cells = []
        for budget in budgets:
            row = table[(table["method"] == method) & (table["budget"] == budget)]
            if row.empty:
                cells.append("—")
                continue
            r = row.iloc[0]
            srcc = f"{r.srcc_mean:.3f}±{0 if np.isnan(r.srcc_std) else r.srcc_std:.3f}"
            plcc = "" if np.isnan(r.plcc_mean) else (
                f" / {r.plcc_mean:.3f}±{0 if np.isnan(r.plcc_std) else r.plcc_std:.3f}")
            cells.append(srcc + plcc)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _embed(path: Path) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def write_report(rows: pd.DataFrame, out: Path, teacher: str, n_train: int, seconds: float,
                 grid: BenchGrid, best: dict) -> BenchReport:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "bench.csv"
    rows.to_csv(csv_path, index=False)
    summary = summarise(rows)
    summary.to_csv(out / "bench-summary.csv", index=False)
    random_rows = summary[summary["selection"] == "random"]
    plots = []
    for metric in ("srcc", "plcc"):
        table: dict[str, dict[int, tuple[float, float]]] = {}
        for _, r in random_rows.iterrows():
            if np.isnan(r[f"{metric}_mean"]):
                continue
            table.setdefault(r.method, {})[int(r.n_labels)] = (
                r[f"{metric}_mean"], 0.0 if np.isnan(r[f"{metric}_std"]) else r[f"{metric}_std"])
        plots.append(budget_curves(table, out / f"budget-{metric}.png", metric, n_train))
    if "LEAF" in best:
        pred, mos, n_labels = best["LEAF"]
        plots.append(scatter_plot(pred, mos, out / "scatter-leaf.png",
                                  f"LEAF, {n_labels} labels, {grid.splits[0]}"))
    sections = [f"<h2>Label selection: {s}</h2>\n" + _md_to_html(markdown_table(summary, s))
                for s in grid.selections]
    markdown = "\n\n".join(f"### label selection: {s}\n\n{markdown_table(summary, s)}"
                           for s in grid.selections)
    (out / "bench.md").write_text(markdown + "\n")
    html = out / "report.html"
    html.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>LEAF label-budget study</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}
img{{max-width:100%}}</style></head><body>
<h1>LEAF label-budget study</h1>
<p>Teacher: <b>{teacher}</b>. Splits: {", ".join(grid.splits)}; seeds: {grid.seeds};
{n_train} training images per split. Cells: SRCC mean±std / PLCC mean±std over splits × seeds,
on each split's test images. PLCC is of the predictions as calibrated on the training labels
(the 4-parameter logistic fitted on the labelled images); with 0 labels only rank metrics are
reported. Wall time: {seconds:.0f} s.</p>
{"".join(sections)}
<h2>Curves (random label selection)</h2>{"".join(_embed(p) for p in plots)}
</body></html>""")
    return BenchReport(rows, summary, markdown, csv_path, html, seconds)


def _md_to_html(markdown: str) -> str:
    lines = [line for line in markdown.splitlines() if not line.startswith("|---")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


_WORKSPACES: dict[str, Workspace] = {}  # shared with forked workers, never pickled
_ALONE: dict[int, dict[str, np.ndarray]] = {}  # id(workspace) → teacher id → score per row


def ws_alone(ws: Workspace) -> dict[str, np.ndarray]:
    return _ALONE.get(id(ws), {})


def judge_alone(ws: Workspace, specs: list[str]) -> dict[str, np.ndarray]:
    """Point-wise scores of extra teachers for every image of the workspace (from the store)."""
    from leafiqa.judgments.runner import teach
    from leafiqa.judgments.store import JudgmentStore
    from leafiqa.teachers.registry import make_teacher

    out: dict[str, np.ndarray] = {}
    with JudgmentStore(ws.config.judgments_path) as store:
        for spec in specs:
            teacher = make_teacher(spec)
            teach(teacher, ws.manifest, store, progress=False)
            points = store.points(teacher.teacher_id, teacher.prompt_version, ws.keys)
            if len(points) < len(set(ws.keys)):
                raise ValueError(f"teacher {teacher.teacher_id} misses "
                                 f"{len(set(ws.keys)) - len(points)} images")
            out[teacher.teacher_id] = np.array([points[k].score for k in ws.keys])
    return out


def _task(split: str, seed: int, grid: BenchGrid) -> tuple[list[dict], dict]:
    import torch

    torch.set_num_threads(1)  # one process per core beats two threads on tiny matrices
    best: dict = {}
    with tqdm(disable=True) as silent:
        rows = run_split_seed(_WORKSPACES[split], grid, split, seed, silent, best)
    return rows, best


def run_bench(config: RunConfig, quick: bool = False, out: Path | None = None,
              progress: bool = True, workers: int | None = None) -> BenchReport:
    """The grid runs (split, seed) tasks in parallel worker processes (``workers``, default:
    the CPU count), each with one thread."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    started = time.time()
    grid = BenchGrid.from_config(config.bench, quick)
    if grid.limit:
        config.data.limit = grid.limit
    rows: list[dict] = []
    best: dict = {}
    for split in tqdm(grid.splits, desc="preparing splits", disable=not progress):
        config.data.split = split
        _WORKSPACES[split] = prepare(config, progress=False)
        if grid.teachers_alone:
            _ALONE[id(_WORKSPACES[split])] = judge_alone(_WORKSPACES[split],
                                                         grid.teachers_alone)
    first = _WORKSPACES[grid.splits[0]]
    teacher_name, n_train = first.teacher.name, first.train_rows.size
    tasks = [(split, seed) for split in grid.splits for seed in grid.seeds]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    per_task = _cell_count(grid) // len(tasks)
    with tqdm(total=_cell_count(grid), desc="bench", unit="run", disable=not progress) as bar:
        if workers <= 1:
            for split, seed in tasks:
                rows.extend(run_split_seed(_WORKSPACES[split], grid, split, seed, bar, best))
        else:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(_task, split, seed, grid) for split, seed in tasks]
                for future in as_completed(futures):
                    task_rows, task_best = future.result()
                    rows.extend(task_rows)
                    best.update(task_best)
                    bar.update(per_task)
    _WORKSPACES.clear()
    _ALONE.clear()
    out = out or Path(config.output) / "bench"
    return write_report(pd.DataFrame(rows), out, teacher_name, n_train, time.time() - started,
                        grid, best)
