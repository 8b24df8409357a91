"""The models shipped in the package (built by scripts/build_packaged_models.py)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import leafiqa
from leafiqa.registry import PACKAGED_DIR, registered_models
from tests.conftest import AGIQA, REPO, make_image, needs_agiqa

PACKAGED = ("leaf-agiqa3k", "leaf-agiqa3k-10pct", "leaf-clive")


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_model_has_a_complete_card(name: str) -> None:
    entry = registered_models()[name]
    assert entry.packaged and name in leafiqa.list_models()
    info = entry.info()
    card = info.card
    assert card["name"] == name and card["training_data"] and card["teacher"]
    assert card["labels"] > 0 and card["mos_scale"]["higher_better"] is True
    low, high = card["mos_scale"]["range"]
    assert info.score_range == (low, high) and low < high
    assert {"srcc", "plcc", "krcc", "rmse", "n"} <= set(card["test"])
    assert "S-Lab" in card["licence"] and "non-commercial" in card["licence"].lower()
    if name.startswith("leaf-agiqa3k"):
        assert "research use" in card["licence"].lower()
    else:
        assert "University of Texas" in card["licence"]
    assert info.input_sizes == (224,)
    assert card["valid_for"] and card["elsewhere"]
    for measured in card["elsewhere"].values():  # the other domain, measured by the build
        assert {"srcc", "plcc", "n"} <= set(measured) and measured["n"] > 100
        assert f"{measured['srcc']:.3f}" in (PACKAGED_DIR / "README.md").read_text()
    assert info.provenance["tool_version"] and info.provenance["seeds"]
    assert info.provenance["labels_file"]["path"]
    readme = (PACKAGED_DIR / "README.md").read_text()
    assert f"`{name}`" in readme and f"{card['test']['srcc']:.3f}" in readme
    assert (PACKAGED_DIR / "licences" / "LICENSE-Q-Bench").is_file()
    assert (PACKAGED_DIR / "licences" / "README-LIVE-Challenge.txt").is_file()


def test_the_label_efficient_model_is_the_same_student_with_a_tenth_of_the_labels() -> None:
    models = registered_models()
    few, full = models["leaf-agiqa3k-10pct"].info(), models["leaf-agiqa3k"].info()
    assert few.card["training_data"] == full.card["training_data"]
    assert few.card["teacher"] == full.card["teacher"]
    assert abs(few.card["labels"] - 0.1 * full.card["labels"]) <= 1
    readme = (PACKAGED_DIR / "README.md").read_text()
    assert "`leaf-agiqa3k-10pct`" in readme and f"{few.card['test']['srcc']:.3f}" in readme


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_model_scores_by_name_with_no_data(name: str, tmp_path: Path) -> None:
    metric = leafiqa.create_metric(name, device="cpu")
    score = metric(make_image(tmp_path / "photo.jpg", seed=1, size=300))
    low, high = metric.score_range
    assert score.shape == (1,) and low - 0.05 * (high - low) <= float(score) <= high * 1.05


@needs_agiqa
def test_agiqa_model_agrees_with_mos_on_held_out_images() -> None:
    from leafiqa.data.readers import read_agiqa3k

    test = read_agiqa3k(AGIQA, "split_1").split("test").spread(80)
    scores = leafiqa.create_metric("leaf-agiqa3k", device="cpu")([i.path for i in test])
    srcc = stats.spearmanr(scores.numpy(), np.array(test.mos_array())).statistic
    assert srcc > 0.5  # the card reports the full test split; 80 images vary around it


def test_wheel_ships_the_models_their_readme_licences_and_page(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PACKAGED:
        assert f"leafiqa/models/{name}.safetensors" in names
    assert {"leafiqa/models/README.md", "leafiqa/models/licences/LICENSE-Q-Bench",
            "leafiqa/models/licences/README-LIVE-Challenge.txt",
            "leafiqa/deploy/static/index.html"} <= names
