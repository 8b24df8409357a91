"""Shared fixtures: small synthetic images made by the tests, and the real AGIQA-3K data in
../shared when present."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings
from PIL import Image, ImageFilter

# Property tests are reproducible: the default profile ("ci") derandomizes hypothesis (the
# examples follow from each test's code, so a fresh clone's CI cannot go red at random) and
# keeps no example database; "explore" searches afresh (random seed, printed with every
# failure, with the blob to replay it). HYPOTHESIS_PROFILE=explore pytest … to hunt for new
# counter-examples; each one found is then kept as an explicit @example on its test.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests never write into the user's real cache: one temporary cache folder for the session
# (set before any test imports LEAF; subprocesses inherit it). A test that names its own cache
# keeps it.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="leaf-test-cache-"))
os.environ["LEAF_CACHE"] = str(SESSION_CACHE)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LEAF_SHARED", REPO.parent / "shared"))
AGIQA = SHARED / "data" / "agiqa3k"
QBENCH = AGIQA / "mllm-judgments"
CLIVE = SHARED / "data" / "clive-dev"

needs_agiqa = pytest.mark.skipif(
    not (AGIQA / "data.csv").is_file(),
    reason=f"AGIQA-3K not found at {AGIQA} (a fresh clone without ../shared/data); "
    "set LEAF_SHARED to the folder holding data/agiqa3k",
)

needs_shared_clive = pytest.mark.skipif(
    not (CLIVE / "data.csv").is_file(),
    reason=f"clive-dev not found at {CLIVE} (a fresh clone without ../shared/data); "
    "set LEAF_SHARED to the folder holding data/clive-dev",
)


def make_image(path: Path, seed: int, blur: float = 0.0, size: int = 96) -> Path:
    """A textured image; more blur = less detail = lower quality for every teacher here."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.NEAREST)
    noise = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise - 30, 0, 255)
                            .astype(np.uint8))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """12 images, blur growing with the index (image_00 sharpest)."""
    folder = tmp_path / "images"
    for i in range(12):
        make_image(folder / f"image_{i:02d}.jpg", seed=i, blur=i * 0.6)
    return folder


@pytest.fixture
def plain_manifest_csv(image_folder: Path) -> Path:
    lines = ["name,mos,std,split"]
    for i in range(12):
        lines.append(f"image_{i:02d}.jpg,{5 - i * 0.3:.2f},0.5,{'test' if i % 4 == 0 else 'train'}")
    path = image_folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_recorded_dataset(
    folder: Path, n: int, mos: Callable[[int], float], logit_good: Callable[[int], float],
    split: Callable[[int], str] | None = None, size: int = 32,
    blur: Callable[[int], float] | None = None,
) -> tuple[Path, Path]:
    """``n`` images im00.jpg… in ``folder`` with a ``name,mos[,split]`` CSV and a recorded
    Q-Bench teacher file; returns (CSV path, teacher file path)."""
    lines = ["name,mos" + (",split" if split else "")]
    for i in range(n):
        make_image(folder / f"im{i:02d}.jpg", seed=i, blur=blur(i) if blur else 0.0, size=size)
        lines.append(f"im{i:02d}.jpg,{mos(i)}" + (f",{split(i)}" if split else ""))
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    recorded = folder / "teacher.json"
    recorded.write_text("".join(
        f'{{"img_path": "im{i:02d}.jpg", "logit_good": {logit_good(i)}, "logit_poor": 0}}'
        for i in range(n)))
    return folder / "data.csv", recorded


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def headless_chromium() -> Iterator[object]:
    """A headless Chromium driven by selenium, quit afterwards; skips (with how to get it)
    where selenium, chromium or chromedriver is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed "
                                    "(pip install 'leaf-iqa[dev]')")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium/chromedriver on PATH (Debian: apt-get install chromium "
                    "chromium-driver; scripts/install-system-deps.sh does it as root)")
    from selenium.webdriver.chrome.service import Service

    # Chromium's profile and its temporary folders go to a folder of the test's own, removed
    # afterwards (left to itself it leaves /tmp/org.chromium.Chromium.* behind)
    scratch = tempfile.TemporaryDirectory(prefix="leaf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,800", f"--user-data-dir={scratch.name}/profile"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": scratch.name})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        scratch.cleanup()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    yield from headless_chromium()




def write_model_file(path: Path, sizes: Sequence[int]) -> Path:
    """A small real LEAF model: Lite0 backbone reading ``sizes``, a head on random features, a
    logistic map; the same model whatever ran before (the head's weights are drawn from a seeded
    generator, not from PyTorch's global one, which earlier tests move). (PyTorch is imported
    here, not when the test session starts.)"""
    import torch

    from leafiqa.calibration.mapping import ScoreMap
    from leafiqa.model.file import LeafNetwork, ModelInfo, save_model
    from leafiqa.student.backbone import MultiLevelBackbone
    from leafiqa.student.head import QualityHead

    rng = np.random.default_rng(0)
    backbone = MultiLevelBackbone("efficientnet-lite0")
    dim = backbone.feature_dim * len(sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = QualityHead(dim, hidden=32, dropout=0.0, components=16)
    head.set_normalisation(rng.normal(size=(64, dim)).astype(np.float32))
    score_map = ScoreMap("logistic4", [4.5, 0.5, 0.0, 1.5], 100)
    info = ModelInfo(backbone="efficientnet-lite0", input_sizes=tuple(sizes), head=head.config(),
                     score_map=score_map, teacher_ids=["qbench:test"], manifest_hash="abc",
                     mos_range=(0.5, 4.5))
    return save_model(path, LeafNetwork(backbone, head, score_map).eval(), info)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_file(tmp_path_factory.mktemp("model") / "model.safetensors", [96])


@pytest.fixture(scope="session")
def pyramid_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model reading an image pyramid of two sizes."""
    return write_model_file(tmp_path_factory.mktemp("pyramid") / "pyramid.safetensors", [64, 96])
