"""``leaf bench``: the label-budget study — methods × label budgets × label selection × splits ×
seeds — with a tidy CSV, a Markdown table, PNG curves and one self-contained HTML report.

Methods come from the registry in ``leafiqa.methods``. Every split of the grid must be one the
data set really has (a column of its splits file): a data set with one fixed split is refused
rather than rerun five times. Distillation does not depend on labels, so each LEAF variant is
distilled once per (split, seed) and calibrated for every budget; features and judgments come
from the caches."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from leafiqa.config import RunConfig
from leafiqa.data.manifest import DataError
from leafiqa.data.selection import (
    SELF_WEIGHTING,
    STRATEGIES,
    embed,
    representation_weights,
    select_order,
)
from leafiqa.data.splits import labelled_rows
from leafiqa.evaluation import provenance
from leafiqa.evaluation.metrics import evaluate
from leafiqa.evaluation.report import BenchReport, format_cell, write_report
from leafiqa.evaluation.stats import mean_interval
from leafiqa.methods import (
    BASELINES,
    LEAF_VARIANTS,
    METHODS,
    MethodResult,
    get_method,
    run_leaf,
    run_teacher_alone,
    unseen_scores,
)
from leafiqa.teachers.protocol import log_odds
from leafiqa.workspace import Workspace, label_count, prepare

BASELINE_NAMES = tuple(m.name for m in BASELINES)
#: ablations that only mean something for a teacher ensemble
ENSEMBLE_ONLY = tuple(v.name for v in LEAF_VARIANTS if v.ensemble_weights != "agreement")


@dataclass
class BenchGrid:
    splits: list[str] = field(default_factory=lambda: [f"split_{i}" for i in range(1, 6)])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: list[float] = field(default_factory=lambda: [0, 0.01, 0.05, 0.1, 0.3, 1.0])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    selections: list[str] = field(default_factory=lambda: ["random", "spread", "variance"])
    ablation_selections: list[str] = field(default_factory=lambda: ["random"])
    limit: int | None = None
    # more teachers to report "alone + logistic" on the same label draws (e.g. every recorded
    # MLLM): teacher specs, judged into the same store
    teachers_alone: list[str] = field(default_factory=list)
    # LEAF's accuracy estimate from its labels alone, against the test SRCC
    estimate: bool = True

    @classmethod
    def from_config(cls, values: dict, quick: bool) -> BenchGrid:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"bench: unknown key(s) {unknown}; allowed: {sorted(known)}")
        grid = cls(**values)
        for name in grid.methods:
            get_method(name)
        for selection in grid.selections:
            parse_selection(selection)
        if quick:
            grid.splits, grid.seeds = grid.splits[:1], grid.seeds[:1]
            grid.budgets = [0, 0.1, 1.0]
            grid.selections = ["random"]
        return grid

    def methods_for(self, selection: str, ensemble: bool) -> list[str]:
        """LEAF and the baselines under every selection; ablations under ``ablation_selections``
        (the ensemble-weighting ablation only with an ensemble teacher)."""
        return [m for m in self.methods
                if (m == "LEAF" or m in BASELINE_NAMES or selection in self.ablation_selections)
                and (ensemble or m not in ENSEMBLE_ONLY)]

    def cell_count(self, ensemble: bool) -> int:
        per = sum((len(self.methods_for(s, ensemble)) + len(self.teachers_alone))
                  * len(self.budgets) for s in self.selections)
        return per * len(self.splits) * len(self.seeds)


def _evaluate_cell(ws: Workspace, predictions: np.ndarray, n_labels: int) -> dict:
    metrics = evaluate(predictions, ws.mos[ws.test_rows], calibrated=n_labels >= 2)
    if n_labels < 2:  # no map onto MOS: only rank metrics are meaningful
        metrics.update(plcc=float("nan"), plcc_fitted=float("nan"), rmse=float("nan"))
    return metrics


ROUNDS = "/rounds"


def parse_selection(selection: str) -> tuple[str, bool]:
    """``NAME`` (each budget chosen in one go) or ``NAME/rounds`` (sequential: the budgets are
    rounds, each budget's labels are the previous budget's plus the next picks given those)."""
    name, rounds = (selection[: -len(ROUNDS)], True) if selection.endswith(ROUNDS) else (
        selection, False)
    if name not in STRATEGIES:
        raise ValueError(f"bench: unknown selection '{selection}'; choose from "
                         f"{list(STRATEGIES)}, each optionally with '{ROUNDS}'")
    return name, rounds


def train_embedding(ws: Workspace) -> np.ndarray:
    """The training images' feature PCA the selection designs work in (once per workspace)."""
    if "_embedding" not in ws.__dict__:
        ws.__dict__["_embedding"] = embed(ws.train_source)
    return ws.__dict__["_embedding"]


def label_draws(ws: Workspace, selection: str, budgets: list[float], seed: int
                ) -> dict[float, np.ndarray]:
    """Each budget's labelled positions among the training rows (only rows with a MOS)."""
    name, rounds = parse_selection(selection)
    train_mos = ws.mos[ws.train_rows]
    pool = labelled_rows(train_mos)
    teacher = ws.teacher_scores[ws.train_rows][pool]
    embedding = train_embedding(ws)[pool] if name in ("kcenter", "variance") else None
    draws: dict[float, np.ndarray] = {}
    done = np.zeros(0, dtype=np.int64)
    for k, budget in enumerate(sorted(budgets)):
        n_labels = min(label_count(budget, pool.size), pool.size)
        if not rounds:
            done = np.zeros(0, dtype=np.int64)
        n_new = max(n_labels - done.size, 0)
        new = select_order(pool.size, n_new, strategy=name, teacher_scores=teacher,
                           embedding=embedding, labelled=done,
                           seed=seed + (1000 * k if rounds else 0))
        done = np.concatenate([done, new])
        draws[budget] = np.sort(pool[done])
    return draws


def estimate_columns(ws: Workspace, result: MethodResult, test_srcc: float,
                     label_rows: np.ndarray) -> dict:
    e = result.estimate
    if e is None:
        return {}
    low, high = e.srcc_interval_for(int(ws.test_rows.size))
    pool_srcc, n_pool = unlabelled_pool_srcc(ws, result, label_rows)
    pool_low, pool_high = e.srcc_interval_for(n_pool)
    return {"est_srcc": e.srcc, "est_low": low, "est_high": high, "est_plcc": e.plcc,
            "est_error": e.srcc - test_srcc, "est_covered": float(low <= test_srcc <= high),
            "est_covered_population": float(e.srcc_low <= test_srcc <= e.srcc_high),
            "pool_srcc": pool_srcc, "est_error_pool": e.srcc - pool_srcc,
            "est_covered_pool": float(pool_low <= pool_srcc <= pool_high)}


def unlabelled_pool_srcc(ws: Workspace, result: MethodResult, label_rows: np.ndarray
                         ) -> tuple[float, int]:
    """The calibrated model's SRCC on the training images left unlabelled, each scored as a
    new image (the student's out-of-sample score), and their number: the pool the estimate
    speaks for, which need not be as hard as the test split."""
    if result.head is None:
        return float("nan"), 0
    unseen = unseen_scores(result.head, ws.predict(result.head), ws)
    rest = np.setdiff1d(labelled_rows(ws.mos[ws.train_rows]), label_rows)
    rows = ws.train_rows[rest]
    predictions = result.calibration.predict_source(unseen[rows], ws.feature_source.subset(rows))
    return float(spearmanr(predictions, ws.mos[rows]).statistic), int(rows.size)


@dataclass
class SplitTask:
    """One (split, seed) of the grid: its rows and the LEAF scatter it may contribute."""

    rows: list[dict]
    scatter: tuple[np.ndarray, np.ndarray, int] | None = None


def run_split_seed(ws: Workspace, grid: BenchGrid, split: str, seed: int,
                   alone: dict[str, np.ndarray], scatter_budget: float) -> SplitTask:
    task = SplitTask([])
    ensemble = bool(ws.teacher.members)
    for selection in grid.selections:
        name, _ = parse_selection(selection)
        draws = label_draws(ws, selection, grid.budgets, seed)
        for budget in grid.budgets:
            label_rows = draws[budget]
            n_labels = int(label_rows.size)
            cell = {"split": split, "seed": seed, "selection": selection, "budget": budget,
                    "n_labels": n_labels}
            for teacher_id, scores in alone.items():
                result = run_teacher_alone(ws, label_rows, seed, scores, f"alone: {teacher_id}")
                task.rows.append({**cell, "method": result.method,
                                  **_evaluate_cell(ws, result.predictions, n_labels),
                                  "seconds": round(result.seconds, 3)})
            for method_name in grid.methods_for(selection, ensemble):
                method = METHODS[method_name]
                if method.needs_labels and n_labels < 2:
                    continue
                extra: dict = {}
                if method_name == "LEAF":
                    weights = None if name in SELF_WEIGHTING or not n_labels else (
                        representation_weights(train_embedding(ws), label_rows))
                    result = run_leaf(ws, label_rows, seed, estimate=grid.estimate,
                                      weights=weights)
                else:
                    result = method.run(ws, label_rows, seed)
                metrics = _evaluate_cell(ws, result.predictions, n_labels)
                if method_name == "LEAF":
                    extra = estimate_columns(ws, result, metrics["srcc"], label_rows)
                task.rows.append({**cell, "method": method_name, **metrics,
                                  "seconds": round(result.seconds, 3), **extra})
                if method_name == "LEAF" and selection == grid.selections[0] and (
                        split == grid.splits[0] and seed == grid.seeds[0]
                        and budget == scatter_budget):
                    task.scatter = (result.predictions, ws.mos[ws.test_rows], n_labels)
    return task


def judge_alone(ws: Workspace, specs: list[str]) -> dict[str, np.ndarray]:
    """Log-odds of extra teachers for every image of the workspace (from the store)."""
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
                raise DataError(f"teacher {teacher.teacher_id} misses "
                                f"{len(set(ws.keys)) - len(points)} images")
            out[teacher.teacher_id] = np.array([log_odds(points[k].score) for k in ws.keys])
    return out


def split_config(config: RunConfig, split: str, limit: int | None) -> RunConfig:
    data = dataclasses.replace(config.data, split=split, limit=limit or config.data.limit)
    return dataclasses.replace(config, data=data)


def check_splits(workspaces: dict[str, Workspace]) -> None:
    """Refuse a grid the data cannot honour: every split must come from its own column, and
    no two splits may have the same test images."""
    if len(workspaces) < 2:
        return
    seen: dict[bytes, str] = {}
    for split, ws in workspaces.items():
        if ws.manifest.extra.get("split_column") != split:
            raise DataError(
                f"{ws.manifest.source}: bench split '{split}' is not a column of the data set's "
                "splits file, so every split would be the same one. Give a splits CSV (name, "
                f"{', '.join(workspaces)}) with data.splits, or bench one split: "
                "--set 'bench.splits=[split_1]'")
        test = np.sort(np.asarray(ws.keys)[ws.test_rows]).tobytes()
        if test in seen:
            raise DataError(f"splits '{seen[test]}' and '{split}' have the same test images")
        seen[test] = split


_TASK_INPUTS: dict[str, tuple[Workspace, dict[str, np.ndarray]]] = {}


def _init_worker(inputs: dict[str, tuple[Workspace, dict[str, np.ndarray]]]) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    # one process per core beats several threads each on these matrices
    torch.set_num_threads(1)
    threadpool_limits(1)
    _TASK_INPUTS.update(inputs)


def _run_task(split: str, seed: int, grid: BenchGrid, scatter_budget: float) -> SplitTask:
    ws, alone = _TASK_INPUTS[split]
    return run_split_seed(ws, grid, split, seed, alone, scatter_budget)


def run_bench(config: RunConfig, quick: bool = False, out: Path | None = None,
              progress: bool = True, workers: int | None = None,
              overrides: dict | None = None) -> BenchReport:
    """``overrides``: the ``--set`` pairs already applied to ``config``, for the provenance
    record. The grid runs (split, seed) tasks in parallel worker processes (``workers``, default:
    the CPU count), each with one thread; the workers get the prepared workspaces through the
    pool's initializer (inherited by fork, never pickled)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    started = time.time()
    grid = BenchGrid.from_config(config.bench, quick)
    record = provenance.collect(config, overrides, started=started, quick=quick,
                                extra={"grid": dataclasses.asdict(grid)})
    inputs: dict[str, tuple[Workspace, dict[str, np.ndarray]]] = {}
    workspaces: dict[str, Workspace] = {}
    for split in tqdm(grid.splits, desc="preparing splits", disable=not progress):
        ws = prepare(split_config(config, split, grid.limit), progress=progress)
        workspaces[split] = ws
        inputs[split] = (ws, judge_alone(ws, grid.teachers_alone) if grid.teachers_alone
                         else {})
    check_splits(workspaces)
    first = workspaces[grid.splits[0]]
    ensemble = bool(first.teacher.members)
    scatter_budget = min(grid.budgets, key=lambda b: abs(b - config.labels.budget))
    tasks = [(split, seed) for split in grid.splits for seed in grid.seeds]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    per_task = grid.cell_count(ensemble) // len(tasks)
    results: list[SplitTask] = []
    with tqdm(total=grid.cell_count(ensemble), desc="bench", unit="run",
              disable=not progress) as bar:
        if workers <= 1:
            _TASK_INPUTS.update(inputs)
            for split, seed in tasks:
                results.append(_run_task(split, seed, grid, scatter_budget))
                bar.update(per_task)
        else:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                     initargs=(inputs,)) as pool:
                futures = [pool.submit(_run_task, split, seed, grid, scatter_budget)
                           for split, seed in tasks]
                for future in as_completed(futures):
                    results.append(future.result())
                    bar.update(per_task)
    _TASK_INPUTS.clear()
    rows = pd.DataFrame([row for task in results for row in task.rows])
    scatter = next((task.scatter for task in results if task.scatter is not None), None)
    out = out or Path(config.output) / "bench"
    seconds = time.time() - started
    record["wall_seconds"] = round(seconds, 1)
    report = write_report(
        rows, out, teacher=first.teacher.name, dataset=first.manifest.source,
        n_train=int(first.train_rows.size), seconds=seconds, provenance=record,
        splits=grid.splits, seeds=grid.seeds, selections=grid.selections, scatter=scatter,
        teacher_weights=[dataclasses.asdict(w) for w in first.teacher.weights])
    extra = labelling_tables(rows, grid.selections)
    if extra:
        (out / "labelling.md").write_text(extra + "\n")
        report.markdown += "\n\n" + extra
    return report


def labelling_tables(rows: pd.DataFrame, selections: list[str]) -> str:
    """LEAF's test SRCC per selection and budget beside random's on the same splits and
    seeds, and the accuracy estimate's mean error (estimate − test SRCC) and how often its
    interval (widened for the test set's own size) covers the test SRCC."""
    leaf = rows[rows["method"] == "LEAF"]
    if leaf.empty:
        return ""
    budgets = sorted(leaf["budget"].unique())
    head = "| selection | " + " | ".join(f"{b:.0%}" for b in budgets) + " |"
    rule = "|---" * (len(budgets) + 1) + "|"
    runs = {key: group.to_numpy() for key, group in leaf.groupby(["selection", "budget"])["srcc"]}
    mean = {key: float(np.mean(values)) for key, values in runs.items()}
    lines = ["### LEAF test SRCC by label selection (mean [95 % bootstrap interval] over splits "
             "× draws; Δ: against random on the same splits and draws)", "", head, rule]
    for selection in selections:
        cells = []
        for b in budgets:
            values = runs.get((selection, b), np.array([np.nan]))
            cell = format_cell(float(np.mean(values)), *mean_interval(values))
            if "random" in selections and selection != "random":
                delta = mean.get((selection, b), np.nan) - mean.get(("random", b), np.nan)
                cell += f" (Δ {delta:+.3f})"
            cells.append(cell)
        lines.append(f"| {selection} | " + " | ".join(cells) + " |")
    if "est_srcc" in leaf:
        est = leaf.dropna(subset=["est_srcc"]).groupby(["selection", "budget"])
        error, covered = est["est_error"].mean(), est["est_covered"].mean()
        covered_pop = est["est_covered_population"].mean()
        lines += ["", "### LEAF accuracy estimate from the labels alone: mean error "
                  "(estimate − test SRCC) / 90 % interval coverage of the test SRCC "
                  "(interval widened for the test set's size; in brackets: unwidened)", "",
                  head, rule]
        for selection in selections:
            # no labels, no estimate: such a budget's cell says so instead of "nan"
            cells = [f"{error[(selection, b)]:+.3f} / {covered[(selection, b)]:.0%} "
                     f"({covered_pop[(selection, b)]:.0%})" if (selection, b) in error
                     else "—" for b in budgets]
            lines.append(f"| {selection} | " + " | ".join(cells) + " |")
    if "est_error_pool" in leaf:
        # every label taken: no image left unlabelled to check against
        est = leaf.dropna(subset=["est_error_pool"]).groupby(["selection", "budget"])
        error, covered = est["est_error_pool"].mean(), est["est_covered_pool"].mean()
        lines += ["", "### The same estimate against the pool it speaks for: mean error "
                  "(estimate − SRCC on the training images left unlabelled, scored as new "
                  "images) / coverage (interval widened for that pool's size)", "", head, rule]
        for selection in selections:
            cells = [f"{error[(selection, b)]:+.3f} / {covered[(selection, b)]:.0%}"
                     if (selection, b) in error else "—" for b in budgets]
            lines.append(f"| {selection} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
