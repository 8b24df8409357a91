"""The study store: image lists, per-rater plans, tokens, and ratings that are stored once and
in order, also when two raters write at the same moment."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leafiqa.errors import DataError
from leafiqa.ratings.study import (
    STUDY_FILE,
    RatingConflict,
    Study,
    StudySettings,
    plan_order,
    read_image_list,
)
from tests.conftest import make_image
from tests.ratings.conftest import make_study


def test_image_lists_from_folder_csv_and_json(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.jpg", "sub/b.png"):
        make_image(tmp_path / "photos" / name, seed=1)
    assert [n for n, _ in read_image_list(tmp_path / "photos")] == ["a.jpg", "sub/b.png"]
    (tmp_path / "photos" / "pick.csv").write_text("rank,path\n1,sub/b.png\n2,a.jpg\n")
    listed = read_image_list(tmp_path / "photos" / "pick.csv")
    assert [n for n, _ in listed] == ["sub/b.png", "a.jpg"]  # the order asked for is kept
    assert listed[0][1] == (tmp_path / "photos" / "sub" / "b.png").resolve()
    (tmp_path / "pick.json").write_text(json.dumps({"images": [{"name": "a.jpg"}]}))
    # `leaf select` writes order,name,path: the dataset's name is kept, the path finds the file
    (tmp_path / "next.csv").write_text(
        f"order,name,path\n1,sub/b.png,{tmp_path / 'photos' / 'sub' / 'b.png'}\n")
    assert read_image_list(tmp_path / "next.csv") == [
        ("sub/b.png", (tmp_path / "photos" / "sub" / "b.png").resolve())]
    # … or relative to where it ran: `leaf select photos` writes photos/sub/b.png
    (tmp_path / "photos" / "next.csv").write_text("order,name,path\n1,sub/b.png,"
                                                  "photos/sub/b.png\n")
    monkeypatch.chdir(tmp_path)
    assert read_image_list(tmp_path / "photos" / "next.csv") == [
        ("sub/b.png", (tmp_path / "photos" / "sub" / "b.png").resolve())]
    assert [n for n, _ in read_image_list(tmp_path / "pick.json", tmp_path / "photos")] == \
        ["a.jpg"]


def test_a_list_naming_missing_images_names_them(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg", seed=1)
    (tmp_path / "pick.csv").write_text("name\na.jpg\ngone.jpg\nalso-gone.jpg\n")
    with pytest.raises(DataError, match=r"pick.csv: 2 image\(s\) not found.*gone.jpg, "
                                        r"also-gone.jpg"):
        read_image_list(tmp_path / "pick.csv")
    (tmp_path / "bad.csv").write_text("score\n1\n")
    with pytest.raises(DataError, match="needs a 'name', 'path' or 'image' column"):
        read_image_list(tmp_path / "bad.csv")


def test_settings_reject_gold_off_the_scale() -> None:
    with pytest.raises(DataError, match="gold: answers off the acr scale.*x.jpg=7"):
        StudySettings(gold={"x.jpg": 7})
    with pytest.raises(DataError, match="scale"):
        StudySettings(scale="stars")


@settings(max_examples=60, derandomize=True, deadline=None)
@given(n=st.integers(1, 30), repeats=st.integers(0, 5), gap=st.integers(0, 5),
       seed=st.integers(0, 2**16))
def test_a_plan_shows_every_image_once_and_only_planned_repeats_again(
        n: int, repeats: int, gap: int, seed: int) -> None:
    ids = list(range(10, 10 + n))
    steps = plan_order(ids, ids[::2], repeats, np.random.default_rng(seed), gap)
    assert [s.position for s in steps] == list(range(len(steps)))
    assert sorted(s.image_id for s in steps if not s.repeat) == ids
    again = [s.image_id for s in steps if s.repeat]
    assert len(again) == len(set(again)) == min(repeats, len(ids[::2]))
    assert set(again) <= set(ids[::2])
    for step in steps:
        if step.repeat:
            first = next(s.position for s in steps if s.image_id == step.image_id)
            assert step.position > first
            if n >= 2 * (repeats + gap + 2):  # enough candidates are shown early
                assert step.position - first > gap


def test_each_rater_gets_an_own_order_and_an_unguessable_token(study: Study) -> None:
    made = study.add_raters(2)
    (one, token1), (two, token2) = made
    assert len(token1) >= 32 and token1 != token2  # 24 random bytes = 192 bits
    assert one.total == two.total == 8 + 2 + 2  # images + gold + repeats
    order1 = [study.step(one.id, k).image_id for k in range(one.total)]
    order2 = [study.step(two.id, k).image_id for k in range(two.total)]
    assert order1 != order2 and sorted(set(order1)) == sorted(set(order2))
    assert study.rater_for_token(token1).id == one.id
    assert study.rater_for_token(token1 + "x") is None
    raw = (study.path).read_bytes() + (study.folder / (STUDY_FILE + "-wal")).read_bytes() \
        if (study.folder / (STUDY_FILE + "-wal")).exists() else study.path.read_bytes()
    assert token1.encode() not in raw  # only its hash is stored
    study.revoke(one.label)
    assert study.rater_for_token(token1) is None and study.rater_for_token(token2) is not None
    with pytest.raises(DataError, match="no rater 'nobody'"):
        study.revoke("nobody")


def test_only_the_next_step_is_stored_and_a_retry_is_not_stored_twice(study: Study) -> None:
    (rater, _), = study.add_raters(1)
    assert study.record(rater.id, 0, 4.0) == 1
    assert study.record(rater.id, 0, 4.0) == 1  # the same rating again: a retried request
    with pytest.raises(RatingConflict, match="already rated"):
        study.record(rater.id, 0, 2.0)
    with pytest.raises(RatingConflict, match="not the next one"):
        study.record(rater.id, 5, 3.0)
    assert [(r.position, r.value) for r in study.ratings()] == [(0, 4.0)]


def test_two_raters_writing_at_once_never_clash(study: Study) -> None:
    raters = [rater for rater, _ in study.add_raters(2)]
    failures: list[BaseException] = []

    def rate_all(rater_id: int, total: int) -> None:
        try:
            for step in range(total):
                study.record(rater_id, step, float(1 + step % 5))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=rate_all, args=(r.id, r.total)) for r in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    stored = study.ratings()
    assert len(stored) == sum(r.total for r in raters)
    assert all(r.done == r.total for r in study.raters())


def test_a_study_folder_is_checked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a study folder"):
        Study(tmp_path)
    make_study(tmp_path, images=2)
    with pytest.raises(DataError, match="already holds a study"):
        make_study(tmp_path, images=2)
