"""``leaf features --engine ray``: the actor pool writes the same features as the local path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from leafiqa.data.readers import read_plain_csv
from leafiqa.judgments.runner import hash_manifest
from leafiqa.student.feature_store import FeatureStore
from leafiqa.student.features import FeatureExtractor
from tests.conftest import make_image

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'leaf-iqa[ray]')")
pytest.importorskip("onnxruntime", reason="the Ray feature engine runs the ONNX graph")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    from leafiqa.distributed.cluster import quiet_data_context

    for attempt in range(3):
        try:
            ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=2,
                     include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001 - Ray gives a busy machine's raylet 30 s, fixed
            ray.shutdown()
            if attempt == 2:
                raise
    quiet_data_context()
    yield
    ray.shutdown()


def test_ray_features_match_the_local_path(tmp_path: Path, local_ray: None) -> None:
    from leafiqa.distributed.ray_features import extract_with_ray

    folder = tmp_path / "images"
    for i in range(9):
        make_image(folder / f"im{i}.jpg", seed=i, size=48)
    (folder / "data.csv").write_text("name\n" + "".join(f"im{i}.jpg\n" for i in range(9)))
    manifest = read_plain_csv(folder / "data.csv")
    keys = hash_manifest(manifest, progress=False)
    local = FeatureExtractor("efficientnet-lite0", [64, 96], tmp_path / "local", "onnx",
                             batch_size=4, workers=0)
    expected = local.transform(manifest, keys, progress=False)
    remote_cache = tmp_path / "ray"
    remote_cache.mkdir()
    for graph in (tmp_path / "local").glob("backbone-*.onnx"):  # skip a second export
        shutil.copy(graph, remote_cache / graph.name)
    remote = FeatureExtractor("efficientnet-lite0", [64, 96], remote_cache, "onnx",
                              batch_size=4, workers=0)
    for level in remote.levels:
        level.shard_rows = 4  # several shards per size
    report = extract_with_ray(remote, manifest, keys, actors=2, block_size=3)
    assert report.extracted == 2 * 9 and not report.failures
    shards = list((remote_cache / "features-efficientnet-lite0-64-ml1").glob("shard-*.npy"))
    assert len(shards) >= 2
    # the Ray run's shards, read by a fresh extractor as a later `leaf run` would: nothing left
    fresh = FeatureExtractor("efficientnet-lite0", [64, 96], remote_cache, "onnx")
    assert all(len(FeatureStore(level.store.directory)) == 9 for level in fresh.levels)
    got = fresh.transform(manifest, keys, progress=False)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    again = extract_with_ray(remote, manifest, keys, actors=2)  # resumes: nothing to do
    assert again.extracted == 0 and again.already_stored == 2 * 9
