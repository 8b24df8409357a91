"""``leaf bench`` on synthetic data: every split comes from the data's own splits, the grid's
methods come from the registry, and a grid the data cannot honour is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leafiqa.config import load_config
from leafiqa.data.manifest import DataError
from leafiqa.evaluation.report import format_cell
from leafiqa.experiments.bench import BenchGrid, run_bench
from leafiqa.experiments.methods import METHODS
from leafiqa.experiments.workspace import load_manifest
from tests.conftest import REPO, write_recorded_dataset


def dataset(tmp_path: Path, n: int = 48) -> tuple[Path, Path, Path]:
    csv, recorded = write_recorded_dataset(
        tmp_path, n, mos=lambda i: round(5 - i / 12, 2),
        logit_good=lambda i: round(3 - i / 8 + 2 * np.sin(i * 1.7), 3),
        blur=lambda i: i / 12)
    rng = np.random.default_rng(0)
    names = pd.read_csv(csv)["name"]
    splits = pd.DataFrame({"name": names})
    for k in (1, 2):
        test = rng.permutation(n)[: n // 4]
        splits[f"split_{k}"] = ["test" if i in test else "train" for i in range(n)]
    splits.to_csv(tmp_path / "splits.csv", index=False)
    return csv, recorded, tmp_path / "splits.csv"


def config_for(tmp_path: Path, csv: Path, recorded: Path, **extra: object):
    return load_config(REPO / "configs" / "demo.yaml", {
        "data.kind": "csv", "data.path": str(csv), "student.input_size": 64,
        "teacher.spec": f"qbench:{recorded}", "teacher.fallback": None,
        "teacher.pairs_per_image": 2, "output": str(tmp_path / "run"),
        "distill.steps": 40, "calibration.steps": 20, **extra})


def test_every_reader_takes_its_split_from_the_splits_file(tmp_path: Path) -> None:
    csv, recorded, splits = dataset(tmp_path)
    expected = pd.read_csv(splits).set_index("name")
    for split in ("split_1", "split_2"):
        manifest = load_manifest(config_for(tmp_path, csv, recorded, **{"data.split": split}))
        assert manifest.extra["split_column"] == split
        assert [item.split for item in manifest] == list(expected.loc[manifest.names, split])
    with pytest.raises(DataError, match="split_9"):
        load_manifest(config_for(tmp_path, csv, recorded,
                                 **{"data.split": "split_9", "data.splits": str(splits)}))


def test_bench_runs_each_split_and_the_registry_methods(tmp_path: Path) -> None:
    csv, recorded, _ = dataset(tmp_path)
    grid = {"splits": ["split_1", "split_2"], "seeds": [0], "budgets": [0, 1.0],
            "selections": ["random"], "methods": ["LEAF", "LEAF no correction (map only)",
                                                  "linear probe (ridge)",
                                                  "teacher alone + logistic"]}
    config = config_for(tmp_path, csv, recorded, **{"bench": grid})
    report = run_bench(config, progress=False, workers=1)
    rows = report.rows
    # 2 splits × 2 budgets × 4 methods, less the ridge probe at 0 labels
    assert len(rows) == 2 * (2 * 4 - 1)
    by_split = rows[rows["method"] == "teacher alone + logistic"].groupby("split")["srcc"]
    assert by_split.mean()["split_1"] != by_split.mean()["split_2"]  # not one split twice
    assert report.html.is_file() and "KRCC" in report.html.read_text()
    assert "±" not in report.markdown and " [" in report.markdown  # mean [95 % interval]
    # a single run has no interval, and shows none
    assert format_cell(0.5, float("nan"), float("nan")) == "0.500"


def test_bench_refuses_a_grid_the_data_cannot_honour(tmp_path: Path) -> None:
    csv, recorded = write_recorded_dataset(
        tmp_path, 24, mos=lambda i: i, logit_good=lambda i: i / 4,
        split=lambda i: "test" if i % 4 == 0 else "train")
    grid = {"splits": ["split_1", "split_2"], "seeds": [0], "budgets": [0]}
    config = config_for(tmp_path, csv, recorded, **{"bench": grid})
    with pytest.raises(DataError, match="not a column"):
        run_bench(config, progress=False, workers=1)
    with pytest.raises(ValueError, match="unknown key"):
        BenchGrid.from_config({"split": ["split_1"]}, quick=False)
    with pytest.raises(ValueError, match="unknown method"):
        BenchGrid.from_config({"methods": ["LEAF", "magic"]}, quick=False)
    assert "LEAF" in METHODS and METHODS["linear probe (ridge)"].needs_labels


def test_each_leaf_variant_distils_with_its_own_config(tmp_path: Path) -> None:
    from leafiqa.experiments.methods import LEAF_VARIANTS, run_leaf
    from leafiqa.experiments.workspace import prepare

    csv, recorded, _ = dataset(tmp_path)
    ws = prepare(config_for(tmp_path, csv, recorded), progress=False)
    none = np.zeros(0, dtype=int)
    by_name = {v.name: v for v in LEAF_VARIANTS}
    logit = run_leaf(ws, none, 0, by_name["LEAF"]).predictions
    score = run_leaf(ws, none, 0, by_name["LEAF P(good) target"]).predictions
    assert not np.allclose(logit, score)  # the ablation's target reaches the distillation


def test_bench_compares_selections_rounds_and_the_estimate(tmp_path: Path) -> None:
    from leafiqa.experiments.bench import label_draws
    from leafiqa.experiments.workspace import prepare

    csv, recorded, _ = dataset(tmp_path, n=64)
    grid = {"splits": ["split_1"], "seeds": [0], "budgets": [0.0, 0.25, 0.5, 1.0],
            "selections": ["random", "variance", "kcenter/rounds"], "methods": ["LEAF"]}
    config = config_for(tmp_path, csv, recorded, **{"bench": grid})
    report = run_bench(config, progress=False, workers=1)
    rows = report.rows
    assert set(rows["selection"]) == {"random", "variance", "kcenter/rounds"}
    labelled = rows[rows["budget"] == 0.5]
    assert labelled["est_srcc"].notna().all()
    assert ((labelled["est_low"] <= labelled["est_srcc"])
            & (labelled["est_srcc"] <= labelled["est_high"])).all()
    assert np.allclose(labelled["est_error"], labelled["est_srcc"] - labelled["srcc"])
    # the pool the estimate speaks for: the training images left unlabelled, scored as new
    assert labelled["pool_srcc"].between(-1, 1).all()
    assert np.allclose(labelled["est_error_pool"], labelled["est_srcc"] - labelled["pool_srcc"])
    tables = (tmp_path / "run" / "bench" / "labelling.md").read_text()
    assert "(Δ " in tables and "coverage of the test SRCC" in tables
    assert tables.strip() in report.markdown
    assert "training images left unlabelled" in tables
    # 0 labels: no estimate; every label: no image left unlabelled — a dash, not "nan"
    assert "nan" not in tables
    ws = prepare(config_for(tmp_path, csv, recorded), progress=False)
    nested = label_draws(ws, "kcenter/rounds", [0.25, 0.5], seed=0)
    assert set(nested[0.25]) < set(nested[0.5])  # a round keeps what earlier ones labelled
    with pytest.raises(ValueError, match="unknown selection 'best/rounds'"):
        BenchGrid.from_config({"selections": ["best/rounds"]}, quick=False)


def test_the_pool_protocol_distils_on_the_test_images_and_reports_both(tmp_path: Path) -> None:
    """``bench.protocol: pool`` (a user's folder): the student distils on the test images too
    — never labelled — and LEAF's figures on images outside the pool (the "new" protocol) are
    reported beside them from the same labels; ``new`` alone has no such columns."""
    from leafiqa.experiments.methods import distilled_head
    from leafiqa.experiments.workspace import prepare

    csv, recorded, _ = dataset(tmp_path, n=64)
    grid = {"splits": ["split_1"], "seeds": [0], "budgets": [0.5], "selections": ["random"],
            "methods": ["LEAF"]}
    pool = run_bench(config_for(tmp_path, csv, recorded, **{"bench": grid}), progress=False,
                     workers=1).rows
    new = run_bench(config_for(tmp_path, csv, recorded,
                               **{"bench": {**grid, "protocol": "new"}}), progress=False,
                    workers=1).rows
    assert (pool["protocol"] == "pool").all() and (new["protocol"] == "new").all()
    assert "new_srcc" in pool and "new_srcc" not in new
    # the "new" figures beside the pool's are the new protocol's own, on the same labels
    assert np.isclose(pool["new_srcc"].iloc[0], new["srcc"].iloc[0])
    assert np.isclose(pool["new_est_srcc"].iloc[0], new["est_srcc"].iloc[0])
    assert not np.isclose(pool["srcc"].iloc[0], new["srcc"].iloc[0])
    ws = prepare(config_for(tmp_path, csv, recorded), progress=False)
    on_pool = ws.with_protocol("pool")
    assert set(on_pool.distill_rows) == set(ws.train_rows) | set(ws.test_rows)
    assert on_pool.with_protocol("pool") is on_pool and ws.with_protocol("new") is ws
    head = distilled_head(on_pool, on_pool.config.distill)
    assert head.out_of_sample is not None and len(head.out_of_sample) == len(ws.keys)


def test_simulated_raters_label_through_the_export_screening(tmp_path: Path) -> None:
    """``bench.raters``: the labels come from a simulated study of a few raters (one careless),
    screened and exported as ``leaf ratings export`` does; the estimate reads their noise, and
    the labels are not the data set's MOS."""
    csv, recorded, _ = dataset(tmp_path, n=64)
    grid = {"splits": ["split_1"], "seeds": [0, 1], "budgets": [0.5], "selections": ["random"],
            "methods": ["LEAF"], "raters": 3, "careless": 1}
    report = run_bench(config_for(tmp_path, csv, recorded, **{"bench": grid}), progress=False,
                       workers=1)
    rows = report.rows
    assert rows["labels_srcc"].between(-1, 1).all() and (rows["labels_srcc"] < 1).any()
    assert rows["reliability"].between(0, 1).all()
    assert rows["careless_kept"].between(0, 1).all()
    assert "simulated rating studies" in report.markdown
    lab = run_bench(config_for(tmp_path, csv, recorded, **{"bench": {**grid, "raters": 0}}),
                    progress=False, workers=1).rows
    assert "labels_srcc" not in lab and lab["est_srcc"].notna().all()
    with pytest.raises(ValueError, match="bench.careless"):
        BenchGrid.from_config({"raters": 2, "careless": 3}, quick=False)
    with pytest.raises(ValueError, match="bench.protocol"):
        BenchGrid.from_config({"protocol": "folder"}, quick=False)
