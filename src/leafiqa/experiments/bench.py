"""``leaf bench``: the label-budget study — methods × label budgets × label selection × splits ×
seeds — with a tidy CSV, a Markdown table, PNG curves and one self-contained HTML report.

Methods come from the table in ``experiments.methods``. Every split of the grid must be one
the data set really has (a column of its splits file): a data set with one fixed split is
refused rather than rerun five times. Distillation does not depend on labels, so each LEAF
variant is distilled once per (split, seed) and calibrated for every budget; features and
judgments come from the caches."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from leafiqa.config import RunConfig
from leafiqa.data.manifest import DataError
from leafiqa.data.splits import labelled_rows
from leafiqa.errors import ConfigError
from leafiqa.evaluation import provenance
from leafiqa.evaluation.metrics import evaluate
from leafiqa.evaluation.report import BenchReport, budget_label, format_cell, write_report
from leafiqa.evaluation.stats import mean_interval
from leafiqa.experiments.methods import (
    BASELINES,
    LEAF_VARIANTS,
    METHODS,
    MethodResult,
    get_method,
    run_leaf,
    run_teacher_alone,
    target_scores,
)
from leafiqa.experiments.simulated_labels import study_labels
from leafiqa.experiments.workspace import PROTOCOLS, Workspace, label_count, prepare
from leafiqa.labelling.designs import (
    SELF_WEIGHTING,
    STRATEGIES,
    embed,
    representation_weights,
    select_order,
)
from leafiqa.teachers.protocol import log_odds

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
    # "pool": the student distils on every image of the split (a user's folder: training and
    # test images; labels from training images only) and LEAF is also run as "new" (distilled
    # on the training images, the test images new to it) for its figures on images outside the
    # pool; "new": the paper's protocol alone
    protocol: str = "pool"
    # labels from a simulated rating study of this many raters per labelled image, screened and
    # exported as `leaf ratings export` does (0: the data set's own MOS are the labels)
    raters: int = 0
    # of those raters, how many answer carelessly (at random, one button, or inverted)
    careless: int = 1

    @classmethod
    def from_config(cls, values: dict, quick: bool) -> BenchGrid:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"bench: unknown key(s) {unknown}; allowed: {sorted(known)}")
        grid = cls(**values)
        if grid.protocol not in PROTOCOLS:
            raise ConfigError(f"bench.protocol: '{grid.protocol}' is not one of {PROTOCOLS}")
        if grid.raters < 0 or grid.careless < 0 or grid.careless > max(grid.raters, 1):
            raise ConfigError("bench.raters must be ≥ 0 and bench.careless between 0 and "
                              "bench.raters")
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
        raise ConfigError(f"bench: unknown selection '{selection}'; choose from "
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
            "est_width": high - low, "reliability": e.reliability,
            "pool_srcc": pool_srcc, "est_error_pool": e.srcc - pool_srcc,
            "est_covered_pool": float(pool_low <= pool_srcc <= pool_high)}


def outside_columns(ws: Workspace, result: MethodResult, n_labels: int) -> dict:
    """LEAF's figures on images outside the pool (the "new" protocol: distilled on the training
    images, the test images new to it), as ``new_*`` columns beside the pool's."""
    metrics = _evaluate_cell(ws, result.predictions, n_labels)
    columns = {"new_srcc": metrics["srcc"], "new_plcc": metrics["plcc"]}
    e = result.estimate
    if e is not None:
        low, high = e.srcc_interval_for(int(ws.test_rows.size))
        columns.update(new_est_srcc=e.srcc, new_est_error=e.srcc - metrics["srcc"],
                       new_est_covered=float(low <= metrics["srcc"] <= high),
                       new_est_width=high - low)
    return columns


def unlabelled_pool_srcc(ws: Workspace, result: MethodResult, label_rows: np.ndarray
                         ) -> tuple[float, int]:
    """The calibrated model's SRCC on the training images left unlabelled, each scored as the
    estimate's images are (``methods.target_scores``), and their number: part of the pool the
    estimate speaks for, which need not be as hard as the test split."""
    if result.head is None:
        return float("nan"), 0
    scores = target_scores(result.head, ws.predict(result.head), ws)
    rest = np.setdiff1d(labelled_rows(ws.mos[ws.train_rows]), label_rows)
    rows = ws.train_rows[rest]
    predictions = result.calibration.predict_source(scores[rows], ws.feature_source.subset(rows))
    return float(spearmanr(predictions, ws.mos[rows]).statistic), int(rows.size)


@dataclass
class SplitTask:
    """One (split, seed) of the grid: its rows and the LEAF scatter it may contribute."""

    rows: list[dict]
    scatter: tuple[np.ndarray, np.ndarray, int] | None = None


def labelled_views(ws: Workspace, grid: BenchGrid, label_rows: np.ndarray, rng_key: list[int]
                   ) -> tuple[np.ndarray, list[Workspace], dict]:
    """The label rows, the protocol's workspace (and the "new" one beside a pool run) with the
    labels they get — the data set's MOS, or a simulated study's (``bench.raters``) — and the
    study's columns."""
    views = [ws.with_protocol(grid.protocol)]
    if grid.protocol == "pool":
        views.append(ws.with_protocol("new"))
    if not grid.raters or not label_rows.size:
        return label_rows, views, {}
    study = study_labels(ws, label_rows, grid.raters, grid.careless,
                         np.random.default_rng(rng_key))
    rows = ws.train_rows[study.rows]
    return study.rows, [v.with_label_values(rows, study.values, study.noise) for v in views], (
        study.columns())


def run_split_seed(ws: Workspace, grid: BenchGrid, split: str, seed: int,
                   alone: dict[str, np.ndarray], scatter_budget: float) -> SplitTask:
    task = SplitTask([])
    ensemble = bool(ws.teacher.members)
    split_number = grid.splits.index(split)
    for selection in grid.selections:
        name, _ = parse_selection(selection)
        draws = label_draws(ws, selection, grid.budgets, seed)
        for k, budget in enumerate(grid.budgets):
            label_rows, views, study = labelled_views(ws, grid, draws[budget],
                                                      [seed, split_number, k])
            main = views[0]
            n_labels = int(label_rows.size)
            cell = {"split": split, "seed": seed, "selection": selection, "budget": budget,
                    "n_labels": n_labels, "protocol": grid.protocol, **study}
            for teacher_id, scores in alone.items():
                result = run_teacher_alone(main, label_rows, seed, scores, f"alone: {teacher_id}")
                task.rows.append({**cell, "method": result.method,
                                  **_evaluate_cell(main, result.predictions, n_labels),
                                  "seconds": round(result.seconds, 3)})
            for method_name in grid.methods_for(selection, ensemble):
                method = METHODS[method_name]
                if method.needs_labels and n_labels < 2:
                    continue
                extra: dict = {}
                if method_name == "LEAF":
                    weights = None if name in SELF_WEIGHTING or not n_labels else (
                        representation_weights(train_embedding(ws), label_rows))
                    result = run_leaf(main, label_rows, seed, estimate=grid.estimate,
                                      weights=weights)
                    for outside in views[1:]:
                        extra.update(outside_columns(outside, run_leaf(
                            outside, label_rows, seed, estimate=grid.estimate, weights=weights),
                            n_labels))
                else:
                    result = method.run(main, label_rows, seed)
                metrics = _evaluate_cell(main, result.predictions, n_labels)
                if method_name == "LEAF":
                    extra.update(estimate_columns(main, result, metrics["srcc"], label_rows))
                task.rows.append({**cell, "method": method_name, **metrics,
                                  "seconds": round(result.seconds, 3), **extra})
                if method_name == "LEAF" and selection == grid.selections[0] and (
                        split == grid.splits[0] and seed == grid.seeds[0]
                        and budget == scatter_budget):
                    task.scatter = (result.predictions, main.mos[main.test_rows], n_labels)
    return task


def judge_alone(ws: Workspace, specs: list[str]) -> dict[str, np.ndarray]:
    """Log-odds of extra teachers for every image of the workspace (from the store)."""
    from leafiqa.judgments.runner import teach
    from leafiqa.judgments.store import JudgmentStore
    from leafiqa.teachers.specs import make_teacher

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
    """LEAF's test SRCC per selection and budget beside random's on the same splits and seeds
    (on the pool's unlabelled images, and beside it on images outside the pool when the bench
    ran the pool protocol), and the accuracy estimate's mean error (estimate − test SRCC), how
    often its interval (widened for the test set's own size) covers the test SRCC, and its mean
    width; with simulated raters, how their study went."""
    leaf = rows[rows["method"] == "LEAF"]
    if leaf.empty:
        return ""
    budgets = sorted(leaf["budget"].unique())
    head = "| selection | " + " | ".join(budget_label(b) for b in budgets) + " |"
    rule = "|---" * (len(budgets) + 1) + "|"
    pool = "protocol" in leaf and (leaf["protocol"] == "pool").all()

    def table(title: str, cell: Callable[[pd.DataFrame], str]) -> list[str]:
        groups = dict(iter(leaf.groupby(["selection", "budget"])))
        lines = ["", title, "", head, rule]
        for selection in selections:
            cells = [cell(groups[(selection, b)]) if (selection, b) in groups else "—"
                     for b in budgets]
            lines.append(f"| {selection} | " + " | ".join(cells) + " |")
        return lines

    def srcc_table(column: str, title: str) -> list[str]:
        mean = leaf.groupby(["selection", "budget"])[column].mean()

        def cell(group: pd.DataFrame) -> str:
            values = group[column].to_numpy()
            text = format_cell(float(np.mean(values)), *mean_interval(values))
            selection, budget = group["selection"].iloc[0], group["budget"].iloc[0]
            if "random" in selections and selection != "random":
                text += f" (Δ {mean[(selection, budget)] - mean.get(('random', budget)):+.3f})"
            return text
        return table(title, cell)

    def estimate_table(prefix: str, title: str) -> list[str]:
        def cell(group: pd.DataFrame) -> str:
            group = group.dropna(subset=[f"{prefix}est_srcc"])
            if group.empty:  # no labels, no estimate
                return "—"
            text = (f"{group[f'{prefix}est_error'].mean():+.3f} / "
                    f"{group[f'{prefix}est_covered'].mean():.0%}")
            if f"{prefix}est_covered_population" in group:
                text += f" ({group[f'{prefix}est_covered_population'].mean():.0%})"
            if f"{prefix}est_width" in group:
                text += f" / {group[f'{prefix}est_width'].mean():.2f}"
            return text
        return table(title, cell)

    where = ("on the pool's unlabelled images (the test images; the student distilled on every "
             "image of the split, labels from training images only)" if pool
             else "on new images (the test images; the student distilled on the training images)")
    lines = srcc_table("srcc", f"### LEAF test SRCC by label selection, {where} (mean [95 % "
                       "bootstrap interval] over splits × draws; Δ: against random on the same "
                       "splits and draws)")
    if "new_srcc" in leaf:
        lines += srcc_table("new_srcc", "### The same labels, on images outside the pool (the "
                            "paper's protocol: the student distilled on the training images "
                            "alone, the test images new to it)")
    if "est_srcc" in leaf:
        lines += estimate_table("", "### LEAF accuracy estimate from the labels alone, "
                                f"{'for the pool' if pool else 'for new images'}: mean error "
                                "(estimate − test SRCC) / coverage of the test SRCC by the 90 % "
                                "interval widened for the test set's size (in brackets: "
                                "unwidened) / mean widened width")
    if "new_est_srcc" in leaf:
        lines += estimate_table("new_", "### The estimate for new images (from the student "
                                "distilled on the training images) against its test SRCC: mean "
                                "error / coverage (widened) / mean width")
    if "est_error_pool" in leaf:
        lines += table("### The estimate against the training images left unlabelled: mean "
                       "error / coverage (interval widened for their number)",
                       lambda g: "—" if g["est_error_pool"].isna().all() else
                       f"{g['est_error_pool'].mean():+.3f} / {g['est_covered_pool'].mean():.0%}")
    if "labels_srcc" in leaf:
        lines += table("### The simulated rating studies: SRCC of the exported MOS with the lab "
                       "MOS / reliability the estimate read from the ratings / honest raters "
                       "kept / careless raters kept",
                       lambda g: "—" if g["labels_srcc"].isna().all() else
                       f"{g['labels_srcc'].mean():.2f} / {g['reliability'].mean():.2f} / "
                       f"{g['honest_kept'].mean():.0%} / {g['careless_kept'].mean():.0%}")
    return "\n".join(lines[1:])
