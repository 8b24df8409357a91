"""Property tests are reproducible (issue 20, item 8): the profile in tests/conftest.py that
every run uses unless HYPOTHESIS_PROFILE says otherwise derandomizes hypothesis and prints the
blob that replays a failure."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci",
                    reason="another hypothesis profile was chosen for this run")
def test_the_default_hypothesis_profile_is_reproducible() -> None:
    current = settings()
    assert current.derandomize and current.print_blob and current.database is None
