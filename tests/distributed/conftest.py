from __future__ import annotations

import pytest

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="ray is not installed (pip install 'leaf-iqa[ray]')")
    for item in items:
        if "distributed" in str(item.fspath):
            item.add_marker(pytest.mark.ray)
            if not HAVE_RAY:
                item.add_marker(skip)
