"""The README's labelling loop as one script (``scripts/walkthrough.sh``): teach → distil →
three rounds of select → a served study rated by simulated raters (one careless) → export
merged into one label file → calibrate over the pool; then each round's model on the photos no
round labelled, on 120 clive-dev photos. Every step must run with no file written between
rounds, the careless rater must be screened out each round, the labels must accumulate with
their rounds, and the estimate must be re-weighted for the selection."""

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
                          env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert output.count("rater3: 31 votes") == 3 and output.count("→ excluded") == 3
    assert output.count("→ kept") == 6
    assert "distilled a ridge head on 120 images" in output
    # the rounds accumulate in one file through the commands themselves
    assert "labels.csv: 24 images (round study1)" in output
    assert "labels.csv: 24 images of round study2; 48 in all (study1 24, study2 24)" in output
    assert "72 in all (study1 24, study2 24, study3 24)" in output
    assert "24 images to rate next (variance; 48 already rated of 116; 4 excluded)" in output
    assert "calibrated on 72 labels of" in output and "(study1: 24, study2: 24, study3: 24)" \
        in output
    for labels in (24, 48, 72):
        assert (f"expected on the pool's unlabelled images (from {labels} labels, weighted for "
                "the selection") in output
    assert output.count("note: the labels are read as a random draw") == 1  # the as-random line
    # is it worth buying more? calibrate says it each round, select before rounds 2 and 3
    assert output.count("worth more labels? the next") == 3 + 1 + 2
    assert output.count("so far: LEAF expected on the pool's unlabelled images") == 2
    assert "labels.csv: study1 24, study2 24, study3 24" in output
    assert "heldout.csv: 44 photos" in output and output.count('"srcc"') == 3
    # the photos no round labelled were distilled on, never labelled: a note, not a warning
    assert output.count("note: 44 of the 44 images evaluated were distilled on") == 3
    assert "trained this model" not in output
    photos = tmp_path / "wt" / "photos"
    assert sorted(p.name for p in photos.glob("*.csv")) == [
        "gold.csv", "heldout.csv", "labels.csv", "round1.csv", "round2.csv", "round3.csv"]
