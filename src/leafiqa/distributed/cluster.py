"""Connecting to Ray: an existing cluster (``address`` or ``RAY_ADDRESS``) or a local one."""

from __future__ import annotations

import os

from leafiqa.errors import LeafError


def require_ray():  # noqa: ANN201 - the ray module
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'leaf-iqa[ray]'") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):  # noqa: ANN201
    """Connect once per process: ``address`` (or ``RAY_ADDRESS``), else start a local Ray."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, log_to_driver=False, include_dashboard=False)
    quiet_data_context()
    return ray


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
