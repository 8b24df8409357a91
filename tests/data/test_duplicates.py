"""Data sets (issue 20, item 5): an image listed twice — the same file, or the same bytes under
another name — counts once, with a warning naming it, and is never both a training and a test
image; ``leaf data --out`` writes absolute paths and never replaces its input."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.data.images import content_hash
from leafiqa.data.readers import read_dataset, read_plain_csv
from tests.conftest import make_image

runner = CliRunner()


def write_csv(folder: Path, rows: list[str], header: str = "name,mos") -> Path:
    path = folder / "data.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_a_file_listed_twice_counts_once_with_a_warning(image_folder: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    rows = [f"image_{i:02d}.jpg,{i}" for i in range(6)]
    data = write_csv(image_folder, rows + ["image_02.jpg,2", "./image_03.jpg,3"])
    with caplog.at_level(logging.WARNING, logger="leafiqa"):
        manifest = read_dataset("csv", data)
    assert len(manifest) == 6
    assert "image_02.jpg" in caplog.text and "image_03.jpg" in caplog.text
    assert manifest.extra["duplicates"]


def test_the_same_bytes_under_two_names_are_one_image(image_folder: Path) -> None:
    shutil.copy(image_folder / "image_04.jpg", image_folder / "copy_of_04.jpg")
    data = write_csv(image_folder, [f"image_{i:02d}.jpg,{i}" for i in range(6)]
                     + ["copy_of_04.jpg,6"])
    manifest = read_dataset("csv", data)
    assert len(manifest) == 6
    merged = [item for item in manifest if item.name == "image_04.jpg"][0]
    assert merged.mos == 5.0  # the mean of the two rows' MOS
    names = read_dataset("folder", image_folder).names  # sorted: the copy comes first
    assert len(names) == 12 and ("copy_of_04.jpg" in names) != ("image_04.jpg" in names)


def test_rows_that_disagree_on_the_split_make_one_training_image(image_folder: Path) -> None:
    data = write_csv(image_folder, [f"image_{i:02d}.jpg,{i},{'test' if i < 3 else 'train'}"
                                    for i in range(6)] + ["image_01.jpg,1,train"],
                     header="name,mos,split")
    manifest = read_dataset("csv", data)
    assert len(manifest) == 6
    assert [i.split for i in manifest if i.name == "image_01.jpg"] == ["train"]


def invoke(*args: object):  # noqa: ANN201
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_a_holdout_never_tests_on_a_training_image(tmp_path: Path) -> None:
    """Ten images, each listed twice (once under a copy's name): on main, ``--holdout 0.3``
    drew test rows whose image also trained."""
    folder = tmp_path / "images"
    rows = []
    for i in range(10):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
        shutil.copy(folder / f"im{i}.jpg", folder / f"again{i}.jpg")
        rows += [f"im{i}.jpg,{i}", f"im{i}.jpg,{i}", f"again{i}.jpg,{i}"]
    data = write_csv(folder, rows)
    out = tmp_path / "prepared.csv"
    result = invoke("data", "--data", data, "--holdout", "0.3", "--out", out)
    assert result.exit_code == 0, result.output
    assert "10 images" in result.stdout and "listed more than once" in result.stderr
    prepared = read_plain_csv(out)
    by_split = {name: {content_hash(i.path) for i in prepared if i.split == name}
                for name in ("train", "test")}
    assert len(by_split["test"]) == 3 and len(by_split["train"]) == 7
    assert not by_split["train"] & by_split["test"]


def test_data_out_writes_absolute_paths(image_folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(image_folder, [f"image_{i:02d}.jpg,{i}" for i in range(12)])
    monkeypatch.chdir(image_folder.parent)
    result = invoke("data", "--data", "images/data.csv", "--holdout", "0.25", "--out",
                    "prepared.csv")
    assert result.exit_code == 0, result.output
    prepared = image_folder.parent / "prepared.csv"
    names = [line.split(",")[0] for line in prepared.read_text().splitlines()[1:]]
    assert len(names) == 12 and all(Path(name).is_absolute() for name in names)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(prepared, elsewhere / "prepared.csv")
    assert len(read_plain_csv(elsewhere / "prepared.csv")) == 12  # readable from anywhere


def test_data_out_never_replaces_its_input_or_an_existing_file(image_folder: Path,
                                                               tmp_path: Path) -> None:
    data = write_csv(image_folder, [f"image_{i:02d}.jpg,{i}" for i in range(12)])
    before = data.read_text()
    for extra in ([], ["--force"]):
        result = invoke("data", "--data", data, "--holdout", "0.25", "--out", data, *extra)
        assert result.exit_code == 2 and "is one of the inputs" in result.output
        assert data.read_text() == before
    out = tmp_path / "prepared.csv"
    out.write_text("mine\n")
    assert invoke("data", "--data", data, "--out", out).exit_code == 2
    assert out.read_text() == "mine\n"
    assert invoke("data", "--data", data, "--out", out, "--force").exit_code == 0
    assert len(read_plain_csv(out)) == 12


def test_a_split_file_naming_both_copies_apart_makes_the_image_train(image_folder: Path
                                                                     ) -> None:
    """The pipeline reads the data set first and applies a split file after (``leaf run``)."""
    shutil.copy(image_folder / "image_04.jpg", image_folder / "copy_of_04.jpg")
    data = write_csv(image_folder, ["copy_of_04.jpg,4"] + [f"image_{i:02d}.jpg,{i}"
                                                           for i in range(6)])
    manifest = read_dataset("csv", data)
    splits = {f"image_{i:02d}.jpg": "train" if i % 2 else "test" for i in range(6)}
    applied = manifest.with_split({**splits, "copy_of_04.jpg": "test",
                                   "image_04.jpg": "train"}, "splits.csv:split_1")
    assert [i.split for i in applied if i.name == "copy_of_04.jpg"] == ["train"]
    assert len(applied) == 6
