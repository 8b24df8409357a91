"""End-to-end runs on a subset of the real AGIQA-3K images in ../shared (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.config import load_config
from leafiqa.judgments.store import JudgmentStore
from tests.conftest import AGIQA, QBENCH, REPO, needs_agiqa

pytestmark = [needs_agiqa, pytest.mark.e2e]
runner = CliRunner()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def small_config(tmp_path: Path, cache_dir: Path, teacher: str, **extra: object):
    overrides = {"data.path": str(AGIQA), "data.limit": 300, "student.input_size": 224,
                 "teacher.spec": teacher, "teacher.fallback": None, "output": str(tmp_path / "run"),
                 "cache": str(cache_dir), **extra}
    return load_config(REPO / "configs" / "demo.yaml", overrides)


@pytest.mark.parametrize("teacher", ["qbench", "cues"])
def test_leaf_run_on_real_images(tmp_path: Path, cache_dir: Path, teacher: str) -> None:
    from leafiqa.experiments.pipeline import format_results, run_pipeline

    spec = f"qbench:{QBENCH / 'internlm_xcomposer_vl.json'}" if teacher == "qbench" else "cues"
    if teacher == "cues":
        pytest.importorskip("leafiqa.teachers.offline").find_brisque_files()
    config = small_config(tmp_path, cache_dir, spec)
    summary = run_pipeline(config, progress=False)
    metrics = summary["metrics"]
    assert set(metrics) == {"LEAF", "student on labels alone", "teacher alone + logistic"}
    assert summary["n_test"] + summary["n_train"] == 300
    assert summary["n_labels"] == round(0.1 * summary["n_train"])
    for values in metrics.values():
        assert -1 <= values["srcc"] <= 1 and np.isfinite(values["rmse"])
    if teacher == "qbench":  # a real MLLM's perception survives distillation
        assert metrics["teacher alone + logistic"]["srcc"] > 0.5
        assert metrics["LEAF"]["srcc"] > 0.4
    model = Path(summary["model"])
    assert model.is_file() and Path(summary["scatter_plot"]).is_file()
    assert "LEAF" in format_results(summary)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["metrics"]["LEAF"]["srcc"] == pytest.approx(metrics["LEAF"]["srcc"])
    # the model file scores the test images the same way the pipeline did
    result = runner.invoke(app, ["evaluate", str(model), "--data", str(AGIQA), "--runtime",
                                 "torch", "--subset", "test"])
    assert result.exit_code == 0, result.output


def test_cli_stages_teach_distill_calibrate_evaluate(tmp_path: Path, cache_dir: Path) -> None:
    subset = tmp_path / "subset.csv"
    frame = pd.read_csv(AGIQA / "data.csv").iloc[::20]
    splits = pd.read_csv(AGIQA / "splits.csv").set_index("name")["split_1"]
    pd.DataFrame({"name": [str(AGIQA / "images" / n) for n in frame["name"]],
                  "mos": frame["mos_quality"].to_numpy(),
                  "split": splits.loc[frame["name"]].to_numpy()}).to_csv(subset, index=False)
    store = tmp_path / "j.sqlite"
    teacher = f"qbench:{QBENCH / 'llava_v1.5.json'}"
    result = runner.invoke(app, ["teach", "--data", str(subset), "--teacher", teacher,
                                 "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "point-wise 150 new" in result.output and "derived" in result.output
    student = tmp_path / "student.safetensors"
    result = runner.invoke(app, ["distill", "--data", str(subset), "--store", str(store),
                                 "--out", str(student), "--input-size", "224",
                                 "--cache", str(cache_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["calibrate", str(student), "--labels", str(subset),
                                 "--budget", "30", "--selection", "spread", "--store",
                                 str(store), "--cache", str(cache_dir)])
    assert result.exit_code == 0, result.output
    calibrated = tmp_path / "student-calibrated.safetensors"
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(calibrated), "--data", str(subset), "--json",
                                 str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == (pd.read_csv(subset)["split"] == "test").sum()
    assert metrics["srcc"] > 0.2 and np.isfinite(metrics["rmse"])


def test_teach_openai_backend_on_200_images(tmp_path: Path) -> None:
    from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app

    pytest.importorskip("fastapi")
    subset = tmp_path / "subset.csv"
    from leafiqa.data.images import content_hash

    unique: dict[str, Path] = {}  # AGIQA-3K holds a few byte-identical duplicates
    for name in pd.read_csv(AGIQA / "data.csv")["name"].iloc[::14]:
        path = AGIQA / "images" / name
        unique.setdefault(content_hash(path), path)
    paths = list(unique.values())[:200]
    pd.DataFrame({"name": [str(p) for p in paths]}).to_csv(subset, index=False)
    store = tmp_path / "j.sqlite"
    behaviour = MockBehaviour()
    args = ["teach", "--teacher", "openai", "--data", str(subset), "--store", str(store),
            "--model", "mock", "--pairs-per-image", "2", "--concurrency", "16", "--quiet"]
    with ServerThread(create_mock_app(behaviour)) as server:
        result = runner.invoke(app, [*args, "--url", server.url + "/v1"])
        assert result.exit_code == 0, result.output
        with JudgmentStore(store) as judgments:
            points = judgments.points("openai:mock")
            pairs = judgments.pairs("openai:mock", source="queried")
        assert len(points) == 200
        assert len(pairs) >= 200
        assert all(p.p_first_ab is not None and p.p_first_ba is not None for p in pairs)
        assert all(0 <= p.reliability <= 1 for p in [*points.values(), *pairs])
        requests = behaviour.requests
        assert requests == 200 + 2 * len(pairs)  # each pair asked in both orders
        result = runner.invoke(app, [*args, "--url", server.url + "/v1"])
        assert result.exit_code == 0, result.output
        assert behaviour.requests == requests  # the second run asks nothing


def test_bench_quick_grid(tmp_path: Path, cache_dir: Path) -> None:
    from leafiqa.experiments.bench import run_bench

    config = small_config(tmp_path, cache_dir,
                          f"qbench:{QBENCH / 'internlm_xcomposer_vl.json'}",
                          **{"bench": {"limit": 300}})
    report = run_bench(config, quick=True, progress=False, workers=1)
    rows = report.rows
    from leafiqa.experiments.bench import BenchGrid

    methods = BenchGrid.from_config({}, quick=True).methods_for("random", ensemble=False)
    # 1 split × 1 seed × 3 budgets × every method, less the two label-only ones at 0 labels
    assert len(rows) == 3 * len(methods) - 2
    assert set(rows["method"]) >= {"LEAF", "student on labels alone", "linear probe (ridge)"}
    zero = rows[rows["n_labels"] == 0]
    assert zero["plcc"].isna().all() and zero["srcc"].notna().all()
    assert rows["srcc"].between(-1, 1).all()
    assert report.html.is_file() and "<img" in report.html.read_text()
    assert (report.csv.parent / "budget-srcc.png").is_file()
    assert len(pd.read_csv(report.csv)) == len(rows)
