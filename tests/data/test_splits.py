from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.data.manifest import DataError
from leafiqa.data.readers import read_plain_csv
from leafiqa.data.splits import (
    holdout_split,
    labelled_rows,
    load_data,
    prepare_splits,
)
from tests.conftest import CLIVE, make_image, needs_shared_clive


def people_csv(tmp_path: Path, n: int = 20, labelled_every: int = 2,
               split: list[str] | None = None) -> Path:
    """Images in their own folder, a CSV elsewhere naming them relative to that folder; only
    every ``labelled_every``-th row has a MOS."""
    images = tmp_path / "photos"
    images.mkdir()
    lines = ["name,mos" + (",split" if split else "")]
    for i in range(n):
        make_image(images / f"p{i:02d}.jpg", seed=i)
        mos = f"{1 + i * 0.1:.2f}" if i % labelled_every == 0 else ""
        lines.append(f"p{i:02d}.jpg,{mos}" + (f",{split[i]}" if split else ""))
    table = tmp_path / "tables" / "ratings.csv"
    table.parent.mkdir()
    table.write_text("\n".join(lines) + "\n")
    return table


def test_csv_with_some_mos_and_an_image_root(tmp_path: Path) -> None:
    table = people_csv(tmp_path)
    with pytest.raises(DataError, match="not found"):  # names are not beside the CSV
        read_plain_csv(table)
    manifest = read_plain_csv(table, image_root=tmp_path / "photos")
    assert len(manifest) == 20 and manifest[0].path == tmp_path / "photos" / "p00.jpg"
    assert [i for i, item in enumerate(manifest) if item.mos is not None] == list(range(0, 20, 2))
    assert labelled_rows([item.mos for item in manifest]).tolist() == list(range(0, 20, 2))
    with pytest.raises(DataError, match="image root"):
        read_plain_csv(table, image_root=tmp_path / "nowhere")


def test_no_split_column_trains_everything(tmp_path: Path) -> None:
    manifest = prepare_splits(read_plain_csv(people_csv(tmp_path), tmp_path / "photos"))
    assert {item.split for item in manifest} == {"train"}


def test_holdout_is_seeded_and_takes_only_labelled_images(tmp_path: Path) -> None:
    manifest = read_plain_csv(people_csv(tmp_path, n=40), tmp_path / "photos")
    first = holdout_split(manifest, 0.2, seed=1)
    again = holdout_split(manifest, 0.2, seed=1)
    other = holdout_split(manifest, 0.2, seed=2)
    test = [item.name for item in first if item.split == "test"]
    assert len(test) == 4  # 20 % of the 20 images with MOS
    assert test == [item.name for item in again if item.split == "test"]
    assert test != [item.name for item in other if item.split == "test"]
    assert all(item.mos is not None for item in first if item.split == "test")
    assert sum(item.split == "train" for item in first) == 36  # unlabeled ones train
    with pytest.raises(DataError, match="already has a split"):
        holdout_split(first, 0.2)
    with pytest.raises(DataError, match="test images"):
        holdout_split(manifest, 0.05)


def test_split_values_are_normalised_and_bad_ones_named(tmp_path: Path) -> None:
    values = ["Train", " test", "TRAINING", "", "testing"] * 2
    manifest = read_plain_csv(people_csv(tmp_path, n=10, split=values), tmp_path / "photos")
    assert [item.split for item in manifest] == ["train", "test", "train", "train", "test"] * 2
    bad = tmp_path / "bad"
    bad.mkdir()
    table = people_csv(bad, n=3, split=["train", "val", "test"])
    with pytest.raises(DataError, match=r"row 3, column 'split'.*'val'"):
        read_plain_csv(table, bad / "photos")


def test_leaf_data_reports_and_writes_a_prepared_manifest(tmp_path: Path) -> None:
    table = people_csv(tmp_path, n=40)
    out = tmp_path / "prepared.csv"
    result = CliRunner().invoke(app, ["data", "--data", str(table), "--image-root",
                                      str(tmp_path / "photos"), "--holdout", "0.2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "40 images, 20 with MOS, 20 unlabeled" in result.output
    assert "test: 4 images (4 with MOS)" in result.output
    prepared = read_plain_csv(out)  # absolute paths: readable from its own folder
    assert len(prepared) == 40 and sum(i.split == "test" for i in prepared) == 4
    result = CliRunner().invoke(app, ["data", "--data", str(table)])
    assert result.exit_code == 2 and "p00.jpg" in result.output


@needs_shared_clive
def test_clive_dev_reader_on_the_shared_data() -> None:
    manifest = load_data("clive", CLIVE, split="split_2")
    # 246.jpg and 333.jpg are the same file (byte for byte): one image, a training image in
    # split_2 where one copy was listed as test
    assert manifest.extra["duplicates"] == [["246.jpg", "333.jpg"]]
    assert len(manifest) == 541 and sum(i.split == "test" for i in manifest) == 107
    assert all(0 <= item.mos <= 100 for item in manifest)
