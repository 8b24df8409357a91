"""The packaged models: the separate distribution leaf-iqa-models (packages/leaf-iqa-models,
built by scripts/build_packaged_models.py, installed by leaf-iqa[models]), under its own terms."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

import leafiqa
from leafiqa.model.registry import PACKAGED_NAMES, packaged_dir, registered_models
from tests.conftest import AGIQA, REPO, make_image, needs_agiqa

pytest.importorskip("leafiqa_models", reason="leaf-iqa-models is not installed (pip install -e "
                                             "packages/leaf-iqa-models, as `make setup` does)")
PACKAGED_DIR = packaged_dir()
assert PACKAGED_DIR is not None
MODELS_PROJECT = REPO / "packages" / "leaf-iqa-models"
PACKAGED = ("leaf-agiqa3k", "leaf-agiqa3k-10pct", "leaf-clive")
assert PACKAGED == PACKAGED_NAMES


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


def build_wheel(project: Path, out: Path) -> tuple[set[str], dict[str, list[str]]]:
    """The file names and the METADATA fields (name → values) of ``project``'s wheel."""
    pytest.importorskip("setuptools")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(out), str(project)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = zipfile.ZipFile(next(out.glob("*.whl")))
    names = set(wheel.namelist())
    meta = Parser().parsestr(wheel.read(next(n for n in names
                                             if n.endswith(".dist-info/METADATA"))).decode())
    return names, {key: meta.get_all(key) or [] for key in set(meta.keys())}


def test_the_code_wheel_carries_no_model_and_says_apache(tmp_path: Path) -> None:
    names, meta = build_wheel(REPO, tmp_path)
    assert not [name for name in names if name.endswith(".safetensors")]
    assert {"leafiqa/serve/static/index.html", "leafiqa/labelling/static/rate.html",
            "leafiqa/labelling/static/rate_admin.html"} <= names
    assert meta["License-Expression"] == ["Apache-2.0"]
    assert "models" in meta["Provides-Extra"]
    assert any(r.startswith("leaf-iqa-models") and 'extra == "models"' in r
               for r in meta["Requires-Dist"])


def test_the_models_wheel_carries_the_models_with_their_terms(tmp_path: Path) -> None:
    names, meta = build_wheel(MODELS_PROJECT, tmp_path)
    for name in PACKAGED:
        assert f"leafiqa_models/{name}.safetensors" in names
    assert {"leafiqa_models/README.md", "leafiqa_models/licences/LICENSE-Q-Bench",
            "leafiqa_models/licences/README-LIVE-Challenge.txt"} <= names
    (licence,) = meta["License-Expression"]
    assert licence.startswith("LicenseRef-") and "Apache" not in licence
    files = meta["License-File"]
    assert "LICENSE" in files and any("LICENSE-Q-Bench" in f for f in files)
    assert any("README-LIVE-Challenge" in f for f in files)
    terms = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    text = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).read(terms).decode()
    assert "non-commercial" in text.lower() and "NOT covered by" in text
    assert "non-commercial" in meta["Summary"][0]
    assert not meta.get("Requires-Dist")  # the models need nothing; leaf-iqa needs them not


def test_without_the_models_package_there_are_no_packaged_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "leafiqa_models", None)  # as if not installed
    assert packaged_dir() is None
    assert not set(PACKAGED) & set(leafiqa.list_models())
    with pytest.raises(FileNotFoundError, match=r"pip install 'leaf-iqa\[models\]'"):
        leafiqa.create_metric("leaf-clive")
    from leafiqa.cli import app

    result = CliRunner().invoke(app, ["score", "leaf-clive",
                                      str(make_image(tmp_path / "a.jpg", seed=1))])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: 'leaf-clive' is a packaged model of leaf-iqa-models, which is not "
                     "installed: pip install 'leaf-iqa[models]'"], result.output
