"""``leaf select``: the next images to rate, in order, given those already rated; bad input
is one clear line naming what is wrong."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.data.inputs import read_data
from leafiqa.labelling.select import select_next
from tests.conftest import write_recorded_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("select")
    csv_path, recorded = write_recorded_dataset(
        folder, 24, mos=lambda i: round(1 + i / 6, 2), logit_good=lambda i: round(i / 4 - 3, 3))
    store = folder / "j.sqlite"
    result = runner.invoke(app, ["teach", "--data", str(csv_path), "--teacher",
                                 f"qbench:{recorded}", "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    return csv_path, store


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_select_writes_the_next_round_given_the_rated_ones(study: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    csv_path, store = study
    first = tmp_path / "round1.csv"
    result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "6", "--selection",
                                 "spread", "--store", str(store), "--out", str(first)])
    assert result.exit_code == 0, result.output
    picked = rows(first)
    assert [int(r["order"]) for r in picked] == list(range(1, 7))
    names = [r["name"] for r in picked]
    assert len(set(names)) == 6 and all(Path(r["path"]).is_file() for r in picked)
    # the spread design: one image from each sixth of the teacher's range
    assert sorted(int(n[2:4]) // 4 for n in names) == list(range(6))
    rated = tmp_path / "rated.csv"
    rated.write_text("name,mos\n" + "".join(f"{n},3.0\n" for n in names))
    second = tmp_path / "round2.json"
    result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "30", "--selection",
                                 "random", "--labels", str(rated), "--out", str(second)])
    assert result.exit_code == 0, result.output
    answer = json.loads(second.read_text())
    assert answer["already_rated"] == 6 and answer["pool"] == 24
    later = [image["name"] for image in answer["images"]]
    assert len(later) == 18 and not set(later) & set(names)  # the rest, none twice


def test_model_based_designs_read_the_features(study: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    csv_path, store = study
    manifest = read_data(str(csv_path))
    for strategy in ("kcenter", "variance"):
        chosen = select_next(manifest, 5, strategy=strategy, store=store, input_size=64,
                             cache_dir=tmp_path / "cache")
        assert len(set(chosen.names)) == 5
        again = select_next(manifest, 5, strategy=strategy, store=store, input_size=64,
                            cache_dir=tmp_path / "cache", labels=None)
        assert again.names == chosen.names
    scores = np.array([i / 4 - 3 for i in range(24)])
    picked = [int(n[2:4]) for n in chosen.names[:3]]
    assert np.ptp(scores[picked]) > 2  # the line first: far apart on the teacher's scale


def test_bad_input_is_one_line(study: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, store = study
    rated = tmp_path / "rated.csv"
    rated.write_text("name,mos\nim01.jpg,3\nnot-there.jpg,2\nalso-missing.png,1\n")
    cases = [
        (["--labels", str(rated)], "not-there.jpg, also-missing.png"),
        (["--selection", "best"], "--selection: 'best' is not one of"),
        (["--labels", str(tmp_path / "none.csv")], "none.csv"),
        (["--selection", "variance", "--store", str(tmp_path / "no.sqlite")], "no.sqlite"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "3", "--store",
                                     str(store), "--out", str(tmp_path / "x.csv"), *extra])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("image,mos\nim01.jpg,3\n")
    result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "3", "--labels",
                                 str(nameless), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "no 'name' column" in result.output
    assert not (tmp_path / "x.csv").exists()  # nothing written on bad input


def test_the_old_names_still_work_and_say_so(study: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, store = study
    result = runner.invoke(app, ["select", str(csv_path), "--n", "6", "--strategy", "spread",
                                 "--store", str(store), "--out", str(tmp_path / "old.csv")])
    assert result.exit_code == 0, result.output
    assert "note: --strategy is now --selection" in result.output
    assert "note: `leaf select DATA` is now `leaf select --data DATA`" in result.output
    new = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "6", "--selection",
                              "spread", "--store", str(store), "--out", str(tmp_path / "new.csv")])
    assert new.exit_code == 0, new.output
    assert "note:" not in new.output
    assert rows(tmp_path / "old.csv") == rows(tmp_path / "new.csv")
    usage = runner.invoke(app, ["select", "--help"]).output
    assert "--strategy" not in usage and "old_data" not in usage
    twice = runner.invoke(app, ["select", str(csv_path), "--data", str(csv_path), "--n", "6"])
    assert twice.exit_code == 2 and "give the data set once" in twice.output


def test_exclude_keeps_images_out_of_selection(study: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    """A gold file (name,value), a list of names, or a name,split CSV (its test rows) keep
    images out of selection on a plain data set; a name matching no image is an error."""
    csv_path, store = study
    gold = tmp_path / "gold.csv"  # names relative to the gold file's folder: matched by file
    gold.write_text("name,value\n" + "".join(
        f"{os.path.relpath(csv_path.parent / f'im{i:02d}.jpg', tmp_path)},{v}\n"
        for i, v in ((0, 1), (23, 5))))
    names_list = tmp_path / "skip.txt"
    names_list.write_text("# not these\nim01.jpg\nim02.jpg\n")
    splits = tmp_path / "splits.csv"
    splits.write_text("name,split\n" + "".join(
        f"im{i:02d}.jpg,{'test' if i >= 18 else 'train'}\n" for i in range(24)))
    out = tmp_path / "next.json"
    result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "30", "--selection",
                                 "random", "--exclude", str(gold), "--exclude", str(names_list),
                                 "--exclude", str(splits), "--out", str(out)])
    assert result.exit_code == 0, result.output
    picked = {image["name"] for image in json.loads(out.read_text())["images"]}
    assert picked == {f"im{i:02d}.jpg" for i in range(3, 18)}
    assert "of 15; 9 excluded)" in result.output
    typo = tmp_path / "typo.txt"
    typo.write_text("im01.jpg\nim99.jpg\n")
    result = runner.invoke(app, ["select", "--data", str(csv_path), "--n", "3", "--selection",
                                 "random", "--exclude", str(typo), "--out",
                                 str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "typo.txt: images not in" in result.output
    assert "im99.jpg" in result.output and not (tmp_path / "x.csv").exists()
