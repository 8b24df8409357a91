"""Connecting to Ray: an existing cluster (``address`` or ``RAY_ADDRESS``) or a local one."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from leafiqa.errors import ConfigError, LeafError

# A Ray that LEAF starts itself serves this process only: by default Ray picks the machine's
# network address and its processes (GCS, raylet, object manager, workers) talk over it, open
# to the network. These keep every node on the loopback address, without a dashboard.
LOCAL_RAY_OPTIONS: dict = {"_node_ip_address": "127.0.0.1", "include_dashboard": False}


# -- Ray internals, read in one place ------------------------------------------------------------
# Three things LEAF needs have no public Ray API (Ray 2.60): keeping a local node on 127.0.0.1
# once ray is imported (ray.init's `_node_ip_address` above, and a switch whose variable,
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, Ray reads at import only),
# the address `ray start` recorded on this machine (ray.init(address="auto") would also join any
# other process's local Ray), and the actor table without a dashboard (ray.util.state needs the
# dashboard and ray[default]). pyproject.toml pins the Ray tested (the `ray` extra); a Ray
# without these names fails loudly rather than, say, listening on the network.

def _ray_constants():  # noqa: ANN202 - ray._private.ray_constants
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        raise ConfigError("this Ray has no switch to keep a local node on 127.0.0.1 (LEAF is "
                          "tested with the Ray its `ray` extra pins); give --ray-address")
    return ray_constants


def _recorded_address() -> str | None:
    """The address of the cluster `ray start` recorded on this machine, if any."""
    try:
        from ray._private.utils import read_ray_address
    except ImportError:
        raise ConfigError("this Ray does not say where `ray start` put its cluster (LEAF is "
                          "tested with the Ray its `ray` extra pins); give --ray-address"
                          ) from None
    return read_ray_address()


def _actor_table() -> dict:
    """Every actor the cluster's control store knows, by id (works without a dashboard)."""
    from ray._private import state

    return state.actors()


def require_ray():  # noqa: ANN201 - the ray module
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'leaf-iqa[ray]'") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):  # noqa: ANN201
    """Connect once per process: ``address`` (or ``RAY_ADDRESS``), else start a local Ray."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        elif _recorded_address():
            # `ray start` ran on this machine: join it as plain ray.init() does (its nodes
            # listen where their owner chose)
            ray.init(num_cpus=num_cpus, log_to_driver=False, include_dashboard=False)
        else:
            start_local_ray(num_cpus)
    quiet_data_context()
    return ray


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While Ray starts nodes here, keep them on 127.0.0.1. Ray (2.x) turns a node address of
    127.0.0.1 into the machine's network address unless it runs without cluster support (its
    Windows/macOS default, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER), which this switches on for
    the start only."""
    ray_constants = _ray_constants()
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_local_ray(num_cpus: int | None = None, **options: object):  # noqa: ANN201
    """A new local Ray whose nodes listen on 127.0.0.1 only (tests, benches, ``--engine ray``
    without an address and without a ``ray start`` cluster on this machine)."""
    ray = require_ray()
    with loopback_only():
        ray.init(address="local", num_cpus=num_cpus, log_to_driver=False,
                 **{**LOCAL_RAY_OPTIONS, **options})
    return ray


def actors_alive(class_name: str) -> list[dict]:
    """This job's actors whose class name contains ``class_name`` that are still alive: not
    yet marked dead by Ray, or marked dead while their process (on this node) still runs —
    ``ray.kill`` marks an actor dead before its process has exited."""
    import ray

    from leafiqa.judgments.store import process_running

    job = ray.get_runtime_context().get_job_id()
    node = ray.get_runtime_context().get_node_id()
    alive = []
    for info in _actor_table().values():
        if class_name not in str(info.get("ActorClassName", "")) or \
                str(info.get("JobID", "")) not in {job, ""}:
            continue
        here = str(info.get("Address", {}).get("NodeID", "")) == node
        pid = int(info.get("Pid") or 0)
        if info.get("State") != "DEAD" or (here and pid and process_running(pid)):
            alive.append(info)
    return alive


def wait_for_actors_gone(class_name: str, timeout: float = 30.0) -> bool:
    """Wait until no actor of this job whose class name contains ``class_name`` is alive.

    Stopping a Ray Data pipeline kills its actors asynchronously; a driver that gives up (an
    error, an interrupt) waits here so no actor of the stopped run keeps working — sending
    requests, say — after the call that started it has returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not actors_alive(class_name):
                return True
        except (ImportError, AttributeError):  # a Ray without this (internal) table
            return False
        time.sleep(0.05)
    return False


def quiet_data_context() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # an actor's own error (a teacher that cannot start) reaches the driver as itself, not
    # wrapped in a UserCodeException that drops it: `leaf` then names it in one line
    context.raise_original_map_exception = True


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def leaf_error_in(error: BaseException) -> LeafError | None:
    """The LEAF error (a teacher that cannot start, say) that a Ray error wraps, if any: Ray
    hands the driver its own exception types with the actor's error as a cause."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        original = getattr(current, "cause", None)  # a RayTaskError's own exception
        if isinstance(original, LeafError):
            return original
        if isinstance(current, LeafError):
            return current
        stack += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None
