"""End to end on real data: the AGIQA-3K split_1 test images (596 rows, 594 distinct images once
byte-identical copies are merged) scored with ``leaf-agiqa3k`` by ``leaf score``,
``leaf evaluate``, ``create_metric``, ``Scorer`` and ``POST /score`` give the same scores (to float
noise); ``leaf evaluate`` measures what the scores say, and so does the model's card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import leafiqa
from leafiqa.cli import app
from leafiqa.data.inputs import read_data
from leafiqa.evaluation.metrics import evaluate
from leafiqa.model.scorer import Scorer
from tests.conftest import AGIQA, needs_agiqa

pytestmark = needs_agiqa
NOISE = 2e-4  # float32 ONNX Runtime against PyTorch on the 0–5 MOS scale


@pytest.fixture(scope="module")
def test_set() -> tuple[list[Path], np.ndarray]:
    manifest = read_data(str(AGIQA), "agiqa3k", "split_1").split("test")
    return [Path(item.path) for item in manifest], np.array(manifest.mos_array())


def test_agiqa_test_images_score_the_same_through_every_entry_point(
        test_set: tuple[list[Path], np.ndarray], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from leafiqa.serve.service import create_app

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    paths, mos = test_set
    assert len(paths) == 594  # split_1's 596 test rows hold two pairs of identical files
    reference = leafiqa.create_metric("leaf-agiqa3k", device="cpu", batch_size=64,
                                      progress=False)(paths).numpy()
    out = tmp_path / "scores.csv"
    runner = CliRunner()
    listing = tmp_path / "test-images.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    result = runner.invoke(app, ["score", "leaf-agiqa3k", str(listing), "--out", str(out),
                                 "--precision", "fp32", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    rows = {row["path"]: float(row["score"]) for row in csv.DictReader(out.open())}
    found = {"leaf score": np.array([rows[str(p)] for p in paths]),
             "Scorer.score_paths": Scorer("leaf-agiqa3k", precision="fp32").score_paths(
                 paths, batch_size=32)}
    with TestClient(create_app("leaf-agiqa3k")) as client:
        served = []
        for start in range(0, len(paths), 64):
            files = [("files", (p.name, p.read_bytes(), "image/jpeg"))
                     for p in paths[start:start + 64]]
            served += client.post("/score", files=files).json()["scores"]
    found["POST /score"] = np.array(served, dtype=float)
    for name, scores in found.items():
        np.testing.assert_allclose(scores, reference, atol=NOISE, err_msg=name)
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "leaf-agiqa3k", "--data", str(AGIQA), "--json",
                                 str(metrics), "--quiet"])
    assert result.exit_code == 0, result.output
    measured, expected = json.loads(metrics.read_text()), evaluate(reference, mos)
    card = Scorer("leaf-agiqa3k").info.card["test"]  # measured by the build, on the same images
    assert card["n"] == len(paths)
    for key in ("srcc", "krcc", "plcc", "rmse"):
        assert measured[key] == pytest.approx(expected[key], abs=1e-4), key
        assert card[key] == pytest.approx(expected[key], abs=1e-3), key
