"""The public API is small, typed and light to import."""

from __future__ import annotations

import subprocess
import sys

import leafiqa
from tests.conftest import REPO

PUBLIC = [
    "BackboneError", "ConfigError", "DataError", "JudgmentStore", "LeafError", "LeafMetric",
    "ModelFileError", "RunConfig", "Scorer", "TeacherError", "__version__", "calibrate",
    "create_metric", "distill_from_store", "evaluate", "list_models", "load_config",
    "load_model", "make_teacher", "read_dataset", "run_pipeline", "teach",
]


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert sorted(leafiqa.__all__) == sorted(PUBLIC)
    for name in leafiqa.__all__:
        assert getattr(leafiqa, name) is not None, name
    assert issubclass(leafiqa.DataError, leafiqa.LeafError)
    assert (REPO / "src" / "leafiqa" / "py.typed").is_file()


def test_importing_leafiqa_does_not_load_torch() -> None:
    code = "import sys, leafiqa; leafiqa.load_config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
