"""After ``teach_with_ray`` gives up, are the processes of its teacher actors still running?

Run from the repository root: ``python scripts/check_ray_stop.py`` (with ``PYTHONPATH`` set to
another ``src`` to check another version, e.g. ``git archive c95397a src``). It starts a local
Ray on 127.0.0.1 and a mock teacher server on 127.0.0.1; nothing else is contacted."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.conftest's images

import ray  # noqa: E402
from ray._private import ray_constants, state  # noqa: E402

from leafiqa.data import read_folder  # noqa: E402
from leafiqa.distributed.cluster import quiet_data_context  # noqa: E402
from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray  # noqa: E402
from leafiqa.judgments.store import JudgmentStore  # noqa: E402
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app  # noqa: E402
from tests.conftest import make_image  # noqa: E402


class Stop(Exception):
    """Stands in for the driver giving up after its first batch."""


def stop(batch: dict) -> None:
    raise Stop


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main(trials: int = 3) -> None:
    folder = Path(tempfile.mkdtemp()) / "images"
    for i in range(12):
        make_image(folder / f"image_{i:02d}.jpg", seed=i, blur=i * 0.6)
    ray_constants.ENABLE_RAY_CLUSTER = False  # keep the nodes on 127.0.0.1 (any version)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    quiet_data_context()
    manifest = read_folder(folder)
    seen: set[int] = set()
    for trial in range(trials):
        behaviour = MockBehaviour(latency=0.05)
        with ServerThread(create_mock_app(behaviour)) as server:
            with contextlib.suppress(Stop):
                teach_with_ray("openai", {"urls": [server.url + "/v1"], "model": "mock",
                                          "backoff_base": 0.01},
                               manifest, JudgmentStore(),
                               settings=RaySettings(actors=2, batch_size=2), on_batch=stop)
            actors = [a for a in state.actors().values()
                      if "TeacherActor" in a["ActorClassName"] and a["Pid"] not in seen]
            rows = [(a["Pid"], a["State"], running(a["Pid"])) for a in actors]
            asked = sum(behaviour.seen.values())
            time.sleep(3)
            print(f"trial {trial}: actors (pid, Ray state, process running) {rows}; requests "
                  f"at return {asked}, 3 s later {sum(behaviour.seen.values())}", flush=True)
            seen |= {a["Pid"] for a in actors}
    ray.shutdown()


if __name__ == "__main__":
    main()
