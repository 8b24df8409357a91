"""The Ray engine decodes like every other entry point: its scores equal ``create_metric``'s,
on large synthetic JPEGs and (when ../shared is present) on a subset of AGIQA-3K's test images
with ``leaf-agiqa3k``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import leafiqa
from tests.conftest import AGIQA, write_model_file
from tests.model.test_one_path import NOISE, large_photos

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'leaf-iqa[ray]')")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    from leafiqa.distributed.cluster import quiet_data_context

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    quiet_data_context()
    yield
    ray.shutdown()


def ray_scores(model: str | Path, paths: list[Path], out: Path) -> np.ndarray:
    from leafiqa.distributed.ray_score import score_with_ray

    score_with_ray(model, paths, out, actors=2, batch_size=8, block_size=16, precision="fp32")
    table = pd.read_csv(out)
    rows = dict(zip(table["path"].astype(str), table["score"], strict=True))
    return np.array([rows[str(p)] for p in paths], dtype=float)


def test_ray_scores_equal_the_metric_on_large_jpegs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model = write_model_file(tmp_path / "m.safetensors", [96])
    photos = large_photos(tmp_path / "photos")
    expected = leafiqa.create_metric(model, device="cpu")(photos).numpy()
    np.testing.assert_allclose(ray_scores(model, photos, tmp_path / "s.csv"), expected,
                               atol=NOISE)


@pytest.mark.skipif(not (AGIQA / "data.csv").is_file(),
                    reason=f"AGIQA-3K not found at {AGIQA} (a fresh clone without ../shared)")
def test_ray_scores_agiqa_test_images_as_the_metric_does(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from leafiqa.data.inputs import read_data

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    manifest = read_data(str(AGIQA), "agiqa3k", "split_1").split("test")
    paths = [Path(item.path) for item in manifest][:64]
    expected = leafiqa.create_metric("leaf-agiqa3k", device="cpu")(paths).numpy()
    np.testing.assert_allclose(ray_scores("leaf-agiqa3k", paths, tmp_path / "s.csv"), expected,
                               atol=NOISE)
