"""A two-node local Ray cluster (``ray.cluster_utils.Cluster``): teaching spreads over both
nodes, and killing a teacher worker mid-run loses no judgment."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from leafiqa.data import read_folder
from leafiqa.judgments.runner import hash_manifest
from leafiqa.judgments.store import JudgmentStore
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app
from tests.conftest import make_image

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'leaf-iqa[ray]')")
pytest.importorskip("fastapi")


def test_two_nodes_share_the_work_and_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    from leafiqa.distributed.cluster import loopback_only, quiet_data_context
    from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

    folder = tmp_path / "images"
    for i in range(24):
        make_image(folder / f"im{i:02d}.jpg", seed=i, blur=(i % 6) * 0.5, size=48)
    manifest = read_folder(folder)
    # both nodes on the loopback address: nothing of the test listens on the network
    with loopback_only():
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    killed: list[int] = []

    def kill_one_worker(batch: dict) -> None:
        if not killed:  # the actor that produced the first batch dies; Ray restarts it
            killed.append(int(batch["pid"][0]))
            os.kill(killed[0], signal.SIGKILL)

    store = JudgmentStore(tmp_path / "judgments.sqlite")
    try:
        with loopback_only():
            ray.init(address=cluster.address, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        quiet_data_context()
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        behaviour = MockBehaviour(latency=0.05)
        with ServerThread(create_mock_app(behaviour)) as server:
            report = teach_with_ray(
                "openai", {"urls": [server.url + "/v1"], "model": "mock", "backoff_base": 0.01},
                manifest, store, settings=RaySettings(actors=2, batch_size=2),
                on_batch=kill_one_worker)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed
    assert len(report.nodes) == 2  # both nodes' actors judged images
    assert set(store.points("openai:mock")) == set(hash_manifest(manifest))
    assert report.points_failed == 0 and not store.failures()
    assert report.points_new == 24  # each image stored once (a retried batch overwrites none)
