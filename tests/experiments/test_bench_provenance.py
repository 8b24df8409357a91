"""``leaf bench`` records where its numbers came from: provenance.json (read back here) with the
``--set`` overrides, the resolved config, the commit and the wall time, also shown in bench.md."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from leafiqa.cli import app
from tests.experiments.test_bench import dataset


def test_bench_writes_provenance_with_the_overrides(tmp_path: Path) -> None:
    csv, recorded, splits = dataset(tmp_path)
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"kind": "csv", "path": str(csv), "splits": str(splits)},
        "teacher": {"spec": f"qbench:{recorded}", "fallback": None, "pairs_per_image": 2},
        "student": {"input_size": 64}, "distill": {"steps": 40},
        "calibration": {"steps": 20}, "cache": str(tmp_path / "cache"),
        "bench": {"splits": ["split_1", "split_2"], "budgets": [0, 1.0],
                  "selections": ["random"], "methods": ["LEAF", "linear probe (ridge)"]}}))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "bench", str(config), "--out", str(out), "--set", "bench.seeds=[0, 1]",
        "--set", f"output={tmp_path / 'run'}", "--set", "labels.seed=3"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "provenance.json").read_text())
    assert record["overrides"] == {"bench.seeds": [0, 1], "output": str(tmp_path / "run"),
                                   "labels.seed": 3}
    assert record["config"]["labels"]["seed"] == 3  # the resolved config, overrides applied
    assert record["config"]["bench"]["seeds"] == [0, 1] and record["grid"]["seeds"] == [0, 1]
    assert record["tool_version"] and "git_commit" in record and record["wall_seconds"] > 0
    assert record["machine"]["cpus"] and record["quick"] is False
    markdown = (out / "bench.md").read_text()
    assert "## Provenance" in markdown and "bench.seeds=[0, 1]" in markdown
    assert "labels.seed=3" in (out / "report.html").read_text()
    # four runs per cell: intervals and a paired test, not "(n=…)"
    assert "(n=" not in markdown and "Wilcoxon" in markdown and " [" in markdown
