"""``leaf features``: fills a config's feature store, resumably; bad input is one error line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.student.feature_store import FeatureStore
from leafiqa.student.features import SingleSizeFeatures
from tests.conftest import make_image


def _config(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for i in range(6):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
    (folder / "data.csv").write_text("name\n" + "".join(f"im{i}.jpg\n" for i in range(6)))
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  kind: csv\n  path: {folder / 'data.csv'}\n"
                      f"student:\n  input_size: 32\noutput: {tmp_path / 'out'}\n"
                      f"cache: {tmp_path / 'cache'}\n")
    return config


def test_features_command_fills_the_store_once(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def forward(self: SingleSizeFeatures, pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape[0])
        return pixels.mean(axis=(2, 3)).astype(np.float32)

    monkeypatch.setattr(SingleSizeFeatures, "_forward", forward)
    config = _config(tmp_path)
    result = CliRunner().invoke(app, ["features", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "features of 6 images" in result.output
    store = FeatureStore(tmp_path / "cache" / "features-efficientnet-lite0-32-ml1")
    assert len(store) == 6 and sum(calls) == 6
    again = CliRunner().invoke(app, ["features", str(config), "--quiet"])
    assert again.exit_code == 0 and sum(calls) == 6  # all stored: nothing recomputed


def test_features_command_rejects_an_unknown_engine(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["features", str(_config(tmp_path)), "--engine", "spark"])
    assert result.exit_code == 2
    assert result.output == "error: --engine: 'spark' is not one of 'local', 'ray'.\n"
