"""The README's labelling loop as one script (``scripts/walkthrough.sh``): teach → distil →
select → a served study rated by simulated raters (one careless) → export → calibrate over the
pool → evaluate → the next round, on 120 clive-dev photos. Every step must run, the careless
rater must be screened out, and the estimate must be re-weighted for the selection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED, needs_shared_clive


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs_shared_clive
def test_the_readme_walkthrough_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("sureal")
    env = {**os.environ, "PORT": str(free_port()), "PYTHON": sys.executable,
           "LEAF_SHARED": str(SHARED)}
    done = subprocess.run(["bash", "scripts/walkthrough.sh", str(tmp_path / "wt")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "rater3: 31 votes" in output and "→ excluded" in output
    assert output.count("→ kept") == 2
    assert "wrote" in output and "labels.csv: 24 images" in output
    assert "expected on new images (from 24 labels, weighted for the selection)" in output
    assert output.count("note: the labels are read as a random draw") == 1  # the as-random line
    assert "heldout.csv: 92 photos" in output and '"srcc"' in output
    assert "24 images to rate next (variance; 24 already rated of 120)" in output
    assert (tmp_path / "wt" / "photos" / "round2.csv").is_file()
