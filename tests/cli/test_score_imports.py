"""`leaf score` with ONNX Runtime starts without PyTorch, the onnx package, SciPy or pandas: the
model's metadata, its cached graph and the graph's checks need none of them (they are imported
only to build a graph that is not cached yet)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_image

pytest.importorskip("onnxruntime")

HEAVY = ("torch", "onnx", "scipy", "pandas")
SCORE_IN_PROCESS = """
import json, runpy, sys
sys.argv = ["leaf", "score", *sys.argv[1:]]
try:
    runpy.run_module("leafiqa", run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def imported_while_scoring(model: Path, *args: str, home: Path) -> list[str]:
    source = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run([sys.executable, "-c", SCORE_IN_PROCESS.format(heavy=HEAVY),
                           str(model), *args], capture_output=True, text=True, check=True,
                          env={"HOME": str(home), "LEAF_CACHE": str(home / "cache"),
                               "PYTHONPATH": source, "PATH": ""})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_scoring_with_onnx_runtime_imports_no_torch_onnx_scipy_or_pandas(
        model_file: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "a.jpg", seed=1, size=300)
    home = tmp_path / "home"
    # the first run exports the graph into the (empty) cache: that one needs PyTorch
    assert "torch" in imported_while_scoring(model_file, str(image), home=home)
    cached = sorted((home / "cache" / "graphs").glob("*-pixels.onnx"))
    assert len(cached) == 1
    assert imported_while_scoring(model_file, str(image), home=home) == []
    out = tmp_path / "scores.csv"
    assert imported_while_scoring(model_file, str(image), "--out", str(out), "-q",
                                  home=home) == []
    assert out.read_text().startswith("path,score")


def test_scoring_with_the_int8_graph_imports_none_of_them_either(
        model_file: Path, tmp_path: Path) -> None:
    import shutil

    from leafiqa.model.quantize import quantize_int8

    model = tmp_path / "m.safetensors"
    shutil.copy2(model_file, model)
    images = [make_image(tmp_path / "img" / f"{i}.jpg", seed=i, size=128) for i in range(16)]
    quantize_int8(model, images, calibration=8, parity=8)
    assert imported_while_scoring(model, str(images[0]), "--precision", "int8",
                                  home=tmp_path / "home") == []
