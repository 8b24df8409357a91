"""``benchmarks/gpu_check.sh --smoke``: the GPU check's CPU-sized version runs end to end (a
tiny random ConvNeXt fully fine-tuned on 24 synthetic images) and prints its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytest.importorskip("transformers", reason="the smoke check builds a tiny transformers ConvNeXt "
                    "(pip install 'leaf-iqa[transformers]')")


def test_gpu_check_smoke_prints_frozen_and_fine_tuned_rows(tmp_path: Path) -> None:
    # the interpreter running the tests (the script's default, .venv/bin/python, is the one of
    # the checkout it is started in: a worktree may have none)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--smoke",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    table = [line.split() for line in done.stdout.splitlines() if line.startswith("synthetic")]
    assert [(row[2], row[3]) for row in table] == [
        ("frozen", "0"), ("frozen", "2"), ("fine-tuned", "0"), ("fine-tuned", "2")]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["device"] in {"cpu", "cuda"}
    assert all(np.isfinite(row["srcc"]) for row in record["rows"])
    assert record["rows"][2]["tuning_s"] > 0
