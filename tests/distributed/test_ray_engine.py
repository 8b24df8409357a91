"""``leaf teach --engine ray`` and ``leaf score --engine ray`` on a local Ray with 2 CPUs,
against the mock MLLM server on 127.0.0.1 and a small real model file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leafiqa.data import read_folder
from leafiqa.distributed.cluster import quiet_data_context, start_local_ray
from leafiqa.judgments.runner import hash_manifest
from leafiqa.judgments.store import JudgmentStore
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app
from tests.conftest import make_image, write_model_file

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'leaf-iqa[ray]')")
pytest.importorskip("fastapi")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    start_local_ray(num_cpus=2)
    quiet_data_context()
    yield
    ray.shutdown()


class Stop(Exception):
    """Stands in for the driver being killed after some batches were stored."""


def options(url: str, **extra: object) -> dict:
    return {"urls": [url + "/v1"], "model": "mock", "backoff_base": 0.01, **extra}


class Delayed:
    """ASGI middleware: each request waits before the app sees (and counts) it, as a server
    thread of a loaded machine does."""

    def __init__(self, app, seconds: float) -> None:  # noqa: ANN001
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        import asyncio

        if scope["type"] == "http" and self.seconds:
            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


def point_requests(behaviour: MockBehaviour) -> dict[str, int]:
    """Requests per single-image conversation (pair requests carry two images)."""
    return {ident: n for ident, n in behaviour.seen.items() if "|" not in ident}


def descendants(root: int) -> set[int]:
    """``root``'s descendant processes (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_a_local_ray_listens_on_the_loopback_address_only() -> None:
    """By default Ray puts its nodes on the machine's network address (open to the network);
    a Ray that LEAF starts stays on 127.0.0.1."""
    import shutil
    import subprocess

    nodes = ray.nodes()
    assert nodes and {node["NodeManagerAddress"] for node in nodes} == {"127.0.0.1"}
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    if shutil.which("ss") is None or not Path("/proc").is_dir():
        return  # the listening sockets cannot be listed here; the node address is checked
    listing = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = descendants(os.getpid())  # other people's Rays on this machine are not ours to judge
    ray_lines = [line for line in listing.splitlines()
                 if any(f"pid={pid}," in line for pid in ours)]
    assert ray_lines, listing
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")), line


def test_a_stopped_run_leaves_no_actor_asking(image_folder: Path) -> None:
    """When the driver gives up (here: an exception after the first batch) teach_with_ray
    returns only once its teacher actors are dead, and nothing more reaches the server once
    it has handled what they sent (a guard: Ray Data kills actors asynchronously)."""
    from ray._private import state

    from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

    def running(pid: int) -> bool:
        stat = Path(f"/proc/{pid}/stat")
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
        except (OSError, IndexError):
            return False

    def alive() -> list[str]:
        # Ray marks a killed actor DEAD before its process has exited: check both
        return [f"{a['ActorClassName']} pid {a['Pid']} {a['State']}"
                for a in state.actors().values() if "TeacherActor" in a["ActorClassName"]
                and (a["State"] != "DEAD" or running(a["Pid"]))]

    manifest = read_folder(image_folder)
    for _ in range(3):  # the window is short: three stops
        behaviour = MockBehaviour(latency=0.05)
        with ServerThread(create_mock_app(behaviour)) as server:
            with pytest.raises(Stop):
                teach_with_ray("openai", options(server.url), manifest, JudgmentStore(),
                               settings=RaySettings(actors=2, batch_size=2),
                               on_batch=lambda batch: (_ for _ in ()).throw(Stop()))
            assert alive() == []
            server.wait_idle()
            asked = sum(behaviour.seen.values())
            server.wait_idle(quiet=1.0)
            assert sum(behaviour.seen.values()) == asked


# 0.3: the server handles each request late, as a loaded machine's server thread does; the
# counts must still add up
@pytest.mark.parametrize("handling_delay", [0.0, 0.3])
def test_teach_judges_every_image_once_and_a_killed_run_resumes(image_folder: Path,
                                                                handling_delay: float) -> None:
    from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

    manifest = read_folder(image_folder)
    behaviour = MockBehaviour()
    store = JudgmentStore()
    settings = RaySettings(actors=2, batch_size=3)
    batches = []

    def die_after_first(batch: dict) -> None:
        batches.append(batch)
        raise Stop

    with ServerThread(Delayed(create_mock_app(behaviour), handling_delay)) as server:
        with pytest.raises(Stop):
            teach_with_ray("openai", options(server.url), manifest, store, settings=settings,
                           on_batch=die_after_first)
        stored_first = set(store.points("openai:mock"))
        assert 1 <= len(stored_first) < 12
        server.wait_idle()  # count what the stopped run asked once the server has seen it all
        asked_first = dict(point_requests(behaviour))
        report = teach_with_ray("openai", options(server.url), manifest, store,
                                pairs_per_image=2, settings=settings)
    keys = hash_manifest(manifest)
    points = store.points("openai:mock")
    assert set(points) == set(keys) and report.points_failed == 0
    assert report.points_stored_before == len(stored_first)
    assert report.points_new == 12 - len(stored_first)
    # nothing stored by the killed run was asked again, nothing was asked twice in the rerun
    asked = point_requests(behaviour)
    assert len(asked) == 12
    assert sum(asked.values()) - sum(asked_first.values()) == report.points_new
    assert report.pairs_planned > 0 and report.pairs_new == report.pairs_planned
    assert len(store.pairs("openai:mock")) == report.pairs_planned
    assert not store.failures()


def test_teach_records_failures_and_the_next_run_retries_them(image_folder: Path) -> None:
    from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

    manifest = read_folder(image_folder)
    store = JudgmentStore()
    settings = RaySettings(actors=2, batch_size=6)
    with ServerThread(create_mock_app(MockBehaviour(fault="500", fault_times=1))) as server:
        report = teach_with_ray("openai", options(server.url, max_retries=0), manifest, store,
                                settings=settings)
        assert report.points_failed == 12 and not store.points("openai:mock")
        assert len(store.failures("openai:mock")) == 12
        report = teach_with_ray("openai", options(server.url, max_retries=0), manifest, store,
                                settings=settings)
    assert report.points_new == 12 and not store.failures("openai:mock")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_writes_a_row_per_input_and_resumes(tmp_path: Path, image_folder: Path,
                                                  suffix: str) -> None:
    from leafiqa.distributed.ray_score import score_with_ray
    from leafiqa.model.scorer import Scorer

    model = write_model_file(tmp_path / "model.safetensors", [64])
    paths = sorted(image_folder.glob("*.jpg"))
    broken = image_folder / "broken.jpg"
    broken.write_bytes(b"not an image")
    inputs = [*paths[:5], broken, *paths[5:]]
    out = tmp_path / f"scores{suffix}"

    def die_after_first(batch: dict) -> None:
        raise Stop

    with pytest.raises(Stop):
        score_with_ray(model, inputs, out, actors=2, batch_size=4, block_size=4,
                       on_batch=die_after_first)
    report = score_with_ray(model, inputs, out, actors=2, batch_size=4, block_size=4)
    assert 1 <= report.already_done < len(inputs)  # the first batch was written, then "killed"
    assert report.scored + report.failed == len(inputs) - report.already_done
    table = pd.read_csv(out, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(out)
    assert sorted(table["path"]) == sorted(map(str, inputs))  # one row per input, none twice
    row = table.set_index("path").loc[str(broken)]
    assert "broken.jpg" in row["error"] and (row["score"] in ("", None) or np.isnan(row["score"]))
    local = Scorer(model).score_paths(paths)
    ours = table.set_index("path").loc[list(map(str, paths)), "score"].astype(float).to_numpy()
    assert np.abs(local - ours).max() < 1e-4


def test_score_reads_parquet_lists_through_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    model = write_model_file(tmp_path / "model.safetensors", [64])
    for i in range(3):
        make_image(tmp_path / "imgs" / f"x{i}.jpg", seed=i)
    pd.DataFrame({"path": [f"imgs/x{i}.jpg" for i in range(3)]}).to_parquet(tmp_path / "l.parquet")
    result = CliRunner().invoke(app, ["score", str(model), str(tmp_path / "l.parquet"),
                                      "--engine", "ray", "--out", str(tmp_path / "s.csv"),
                                      "--actors", "1"])
    assert result.exit_code == 0, result.output
    assert "scored 3 images, 0 failed" in result.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 3


def test_teach_with_a_vllm_engine_in_each_actor(tmp_path: Path, image_folder: Path) -> None:
    """``leaf teach --engine ray --teacher vllm:MODEL``: the engine is built inside each teacher
    actor (never on the driver), once per actor, with the ``--vllm-arg`` options, in the runtime
    environment given; every image is judged once. vLLM is the stand-in of tests/fakes."""
    import json
    import os

    from typer.testing import CliRunner

    from leafiqa.cli import app

    fakes = Path(__file__).resolve().parents[1] / "fakes"
    log = tmp_path / "engines.log"
    python_path = os.pathsep.join(p for p in (str(fakes), os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": python_path, "FAKE_VLLM_LOG": str(log)}}
    store = tmp_path / "judgments.sqlite"
    result = CliRunner().invoke(app, [
        "teach", "--data", str(image_folder), "--teacher", "vllm:fake/Qwen2-VL", "--engine", "ray",
        "--store", str(store), "--actors", "2", "--pairs-per-image", "2",
        "--vllm-arg", "max_model_len=4096", "--vllm-arg", "gpu_memory_utilization=0.8",
        "--runtime-env", json.dumps(runtime_env)])
    assert result.exit_code == 0, result.output
    engines = [line.split(" ", 2) for line in log.read_text().splitlines()]
    pids = [int(pid) for pid, _, _ in engines]
    assert 1 <= len(pids) <= 4 and os.getpid() not in pids
    assert len(set(pids)) == len(pids)  # one engine per actor process, however many batches
    assert all(model == "fake/Qwen2-VL" and json.loads(options) ==
               {"max_model_len": 4096, "gpu_memory_utilization": 0.8}
               for _, model, options in engines)
    with JudgmentStore(store) as judgments:
        points = judgments.points("vllm:fake/Qwen2-VL")
        assert set(points) == set(hash_manifest(read_folder(image_folder)))
        assert all(p.method == "logprobs" for p in points.values())
        assert len(judgments.pairs("vllm:fake/Qwen2-VL")) > 0 and not judgments.failures()
    # sharper images (lower index) are judged better, as the stand-in answers
    scores = [points[k].score for k in hash_manifest(read_folder(image_folder))]
    assert scores[0] > scores[-1]


def test_teach_refuses_a_runtime_env_that_is_not_a_json_object(image_folder: Path) -> None:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    result = CliRunner().invoke(app, ["teach", "--data", str(image_folder), "--engine", "ray",
                                      "--runtime-env", "[1, 2]"])
    assert result.exit_code == 2 and "--runtime-env: expected a JSON object" in result.output


def test_a_teacher_that_cannot_start_in_its_actors_is_one_clear_error(image_folder: Path) -> None:
    """vLLM missing on the workers: the actors' own error, named once, not a Ray traceback."""
    import importlib.util

    from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray
    from leafiqa.teachers.protocol import TeacherError

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(TeacherError, match=r"^teacher actors failed: vllm is not installed"
                                           r"[^\n]*nodes\)$"):
        teach_with_ray("vllm:some/model", {}, read_folder(image_folder), JudgmentStore(),
                       settings=RaySettings(actors=1, batch_size=4))
