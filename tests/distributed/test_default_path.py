"""The default, single-machine path never imports Ray (it is an optional extra)."""

from __future__ import annotations

import subprocess
import sys


def test_default_path_does_not_import_ray() -> None:
    code = ("import sys, leafiqa, leafiqa.cli, leafiqa.model.scorer, leafiqa.model.quantize, "
            "leafiqa.teachers.endpoints, leafiqa.judgments.runner; "
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
