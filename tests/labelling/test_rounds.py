"""Labels that arrive in rounds kept in one file (``labelling.rounds``): each export merges its
study into the label file already there, and a gold photo a later round chose is dropped from
the gold set while enough gold remains."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leafiqa.errors import DataError
from leafiqa.labelling.rounds import drop_chosen_gold, merge_round, round_counts
from leafiqa.labelling.study import Study
from tests.cli.test_bad_inputs import assert_user_error, invoke
from tests.cli.test_rate import photos
from tests.conftest import make_image


def labels(path: Path, rows: list[tuple[str, float]]) -> Path:
    path.write_text("name,mos,std,n\n" + "".join(f"{n},{m},0.5,2\n" for n, m in rows))
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_rounds_accumulate_and_a_study_exported_again_replaces_its_own_rows(
        tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    first = merge_round(labels(tmp_path / "a.csv", [("p1.jpg", 3), ("p2.jpg", 4)]), out,
                        "study1")
    assert first.summary() == "(round study1)" and first.total == 2
    second = merge_round(labels(tmp_path / "b.csv", [("p3.jpg", 2)]), out, "study2")
    assert second.per_round == {"study1": 2, "study2": 1}
    assert second.summary() == "of round study2; 3 in all (study1 2, study2 1)"
    # round 1 exported again (a late rater): its rows replaced where they were, round 2 kept
    again = merge_round(labels(tmp_path / "c.csv", [("p1.jpg", 1), ("p4.jpg", 5)]), out,
                        "study1")
    assert [(r["name"], r["mos"], r["round"]) for r in read(out)] == [
        ("p1.jpg", "1", "study1"), ("p4.jpg", "5", "study1"), ("p3.jpg", "2", "study2")]
    assert again.replaced == [] and round_counts(out) == {"study1": 2, "study2": 1}
    # an image a later round rates again takes the later labels, and says so
    later = merge_round(labels(tmp_path / "d.csv", [("p3.jpg", 4)]), out, "study3")
    assert later.replaced == ["p3.jpg"]
    assert [r["round"] for r in read(out) if r["name"] == "p3.jpg"] == ["study3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv", "d.csv",
                                                          "labels.csv"]  # no temporary left


def test_a_file_that_is_not_a_label_file_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "data.csv"
    out.write_text("name,split\np1.jpg,train\n")
    with pytest.raises(DataError, match="data.csv: exists and is not a label file"):
        merge_round(labels(tmp_path / "a.csv", [("p1.jpg", 3)]), out, "study1")
    assert out.read_text() == "name,split\np1.jpg,train\n"


def test_a_chosen_gold_image_leaves_the_gold_set_while_enough_remains(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("g1.jpg", "g2.jpg", "g3.jpg", "p1.jpg")}
    gold = [(name, files[name]) for name in ("g1.jpg", "g2.jpg", "g3.jpg")]
    answers = {"g1.jpg": 5.0, "g2.jpg": 1.0, "g3.jpg": 5.0}
    kept = drop_chosen_gold([("p1.jpg", files["p1.jpg"])], gold, answers)
    assert kept.dropped == [] and kept.images == gold
    chosen = drop_chosen_gold([("other/name.jpg", files["g2.jpg"])], gold, answers)  # by file
    assert chosen.dropped == ["g2.jpg"] and set(chosen.answers) == {"g1.jpg", "g3.jpg"}
    with pytest.raises(DataError, match="g1.jpg, g2.jpg; 1 gold image"):
        drop_chosen_gold([("g1.jpg", files["g1.jpg"]), ("g2.jpg", files["g2.jpg"])], gold,
                         answers)


def rate_all(study_folder: Path, answer: float) -> None:
    study = Study(study_folder)
    for rater in study.raters():
        for step in range(rater.total):
            name = study.image(study.step(rater.id, step).image_id).name
            study.record(rater.id, step, 5.0 if name == "good.jpg" else
                         1.0 if name == "bad.jpg" else answer)


def test_two_studies_export_into_one_label_file_and_gold_chosen_later_is_dropped(
        tmp_path: Path) -> None:
    pytest.importorskip("sureal")
    folder = photos(tmp_path / "photos", count=6)
    (folder / "gold.csv").write_text("name,value\ngood.jpg,5\nbad.jpg,1\ngood2.jpg,5\n")
    make_image(folder / "good2.jpg", seed=52)
    (folder / "round1.csv").write_text("name\np0.jpg\np1.jpg\np2.jpg\n")
    (folder / "round2.csv").write_text("name\np3.jpg\np4.jpg\ngood2.jpg\n")
    out = folder / "labels.csv"
    for k in (1, 2):
        made = invoke("rate", "create", tmp_path / f"study{k}", "--images",
                      folder / f"round{k}.csv", "--gold", folder / "gold.csv", "--raters", "2",
                      "--repeats", "0")
        assert made.exit_code == 0, made.output
        rate_all(tmp_path / f"study{k}", 3.0 + k)
        exported = invoke("ratings", "export", tmp_path / f"study{k}", "--out", out)
        assert exported.exit_code == 0, exported.output
    assert "note: good2.jpg chosen as study image(s): no longer gold in this study (2 gold " \
           "remain)" in made.output
    assert "wrote" in exported.output and "3 images of round study2; 6 in all (study1 3, " \
                                          "study2 3)" in exported.output
    assert {(r["name"], r["round"]) for r in read(out)} == {
        ("p0.jpg", "study1"), ("p1.jpg", "study1"), ("p2.jpg", "study1"),
        ("p3.jpg", "study2"), ("p4.jpg", "study2"), ("good2.jpg", "study2")}
    assert {r["mos"] for r in read(out) if r["round"] == "study2"} == {"5.0000"}
    # too few gold left: one line, no study
    (folder / "round3.csv").write_text("name\ngood.jpg\nbad.jpg\n")
    assert_user_error(invoke("rate", "create", tmp_path / "study3", "--images",
                             folder / "round3.csv", "--gold", folder / "gold.csv"),
                      "gold images also listed as study images: good.jpg, bad.jpg")
    assert not (tmp_path / "study3").exists()
