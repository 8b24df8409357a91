"""The study store: image lists, per-rater plans, tokens, and ratings that are stored once and
in order, also when two raters write at the same moment."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leafiqa.errors import DataError
from leafiqa.labelling.study import (
    STUDY_FILE,
    RatingConflict,
    Study,
    StudySettings,
    plan_order,
    read_image_list,
)
from tests.conftest import make_image
from tests.labelling.conftest import make_study


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


# --- a study serves its images and nothing else (issue 32) --------------------------------

def secret_file(folder: Path) -> Path:
    """A file outside the photo folder that must never reach a rater (a stand-in for
    /etc/passwd)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return folder / "passwd"


def test_a_list_naming_a_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    secret = secret_file(tmp_path / "etc")
    make_image(tmp_path / "photos" / "x.jpg", seed=1)
    make_image(tmp_path / "truth.jpg", seed=2)  # an image, but outside the list's folder
    for listed in (f"x.jpg\n{secret}\n", "x.jpg\n../truth.jpg\n"):
        (tmp_path / "photos" / "pick.csv").write_text("name\n" + listed)
        with pytest.raises(DataError, match=r"pick.csv: 1 entry outside .*photos.*--allow-root"):
            read_image_list(tmp_path / "photos" / "pick.csv")
    # the owner may name a folder outside: then its images are taken, and still checked
    (tmp_path / "photos" / "pick.csv").write_text("name\nx.jpg\n../truth.jpg\n")
    listed = read_image_list(tmp_path / "photos" / "pick.csv", allowed_roots=[tmp_path])
    assert [name for name, _ in listed] == ["x.jpg", "../truth.jpg"]
    (tmp_path / "photos" / "pick.csv").write_text(f"name\nx.jpg\n{secret}\n")
    allowed = read_image_list(tmp_path / "photos" / "pick.csv", allowed_roots=[secret.parent])
    with pytest.raises(DataError, match=r"1 of 2 entries are not images.*passwd: not an image"):
        Study.create(tmp_path / "study", allowed, StudySettings())
    assert not (tmp_path / "study").exists()


def test_a_link_in_the_folder_leading_out_is_refused(tmp_path: Path) -> None:
    secret = secret_file(tmp_path / "etc")
    make_image(tmp_path / "photos" / "a.jpg", seed=1)
    (tmp_path / "photos" / "evil.jpg").symlink_to(secret)
    with pytest.raises(DataError, match=r"photos: 1 entry outside .*: evil.jpg"):
        read_image_list(tmp_path / "photos")
    (tmp_path / "photos" / "evil.jpg").unlink()
    (tmp_path / "photos" / "same.jpg").symlink_to(tmp_path / "photos" / "a.jpg")  # inside
    assert [name for name, _ in read_image_list(tmp_path / "photos")] == ["a.jpg", "same.jpg"]


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "a.jpg", seed=1)
    (tmp_path / "photos" / "notes.jpg").write_text("not a photo")
    (tmp_path / "photos" / "doc.png").write_bytes(b"%PDF-1.4 ...")
    with pytest.raises(DataError, match=r"2 of 3 entries are not images a study can serve: "
                                        r"doc.png: not an image.*PDF.*; notes.jpg: not an image"):
        Study.create(tmp_path / "study", read_image_list(tmp_path / "photos"), StudySettings())
    assert not (tmp_path / "study").exists()


def test_one_content_under_three_names_is_one_image(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "a.jpg", seed=1)
    make_image(tmp_path / "photos" / "b.jpg", seed=2)
    for copy in ("a-copy.jpg", "sub/a.jpg"):
        (tmp_path / "photos" / copy).parent.mkdir(exist_ok=True)
        (tmp_path / "photos" / copy).write_bytes((tmp_path / "photos" / "a.jpg").read_bytes())
    study = Study.create(tmp_path / "study", read_image_list(tmp_path / "photos"),
                         StudySettings(repeats=0))
    assert [image.name for image in study.images()] == ["a-copy.jpg", "b.jpg"]
    assert study.merged() == [["a-copy.jpg", "a.jpg", "sub/a.jpg"]]
    (rater, _), = study.add_raters(1)
    assert rater.total == 2  # one photo is rated once, not three times


def test_gold_images_can_be_among_the_repeats(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=4, gold={f"gold{k}.jpg": 5.0 for k in range(4)},
                       repeats=2)
    repeated = set()
    for rater, _ in study.add_raters(12):
        repeated |= {study.step(rater.id, k).image_id for k in range(rater.total)
                     if study.step(rater.id, k).repeat}
    gold_ids = {image.id for image in study.images() if image.gold is not None}
    assert repeated & gold_ids and repeated - gold_ids  # either kind can be shown twice


def test_counts_are_checked_and_repeats_capped_at_the_images(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=3, gold={"g.jpg": 5.0}, repeats=1000)
    assert study.settings.repeats == 4  # every image once more is all a plan can hold
    (rater, _), = study.add_raters(1)
    assert rater.total == 8
    for count in (0, -2, 1001, True):
        with pytest.raises(DataError, match="--count: expected 1 to 1000"):
            study.add_raters(count)
    assert len(study.raters()) == 1


def test_a_served_image_is_the_file_recorded_at_creation(tmp_path: Path) -> None:
    from leafiqa.labelling.study import ImageGone

    study = make_study(tmp_path, images=4)
    first, second, third, fourth = study.images()
    assert study.image_bytes(first) == first.path.read_bytes()
    secret = secret_file(tmp_path / "etc")
    first.path.unlink()
    first.path.symlink_to(secret)  # replaced by a link after creation
    with pytest.raises(ImageGone):
        study.image_bytes(first)
    make_image(second.path, seed=99)  # replaced by another image
    with pytest.raises(ImageGone, match="recorded"):
        study.image_bytes(second)
    data = bytearray(third.path.read_bytes())
    data[-10] ^= 0xFF  # the same size, one byte changed
    third.path.write_bytes(bytes(data))
    with pytest.raises(ImageGone, match="not the one recorded at creation"):
        study.image_bytes(third)
    fourth.path.unlink()
    os.mkfifo(fourth.path)  # a pipe would block a plain open() for ever
    with pytest.raises(ImageGone, match="not a regular file"):
        study.image_bytes(fourth)


# --- every state a study file can be in: one DataError naming it -------------------------

def test_a_damaged_study_is_one_error(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2)
    study.path.write_bytes(b"garbage " * 1000)
    with pytest.raises(DataError, match=r"study.sqlite: not a readable LEAF study .*backup"):
        Study(study.folder)
    study.path.write_bytes(b"")
    with pytest.raises(DataError, match=r"study.sqlite: not a readable LEAF study"):
        Study(study.folder)


def test_another_programs_sqlite_file_is_not_a_study(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    with sqlite3.connect(tmp_path / "s" / STUDY_FILE) as other:
        other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    other.close()
    before = (tmp_path / "s" / STUDY_FILE).read_bytes()
    with pytest.raises(DataError, match=r"another program \(tables: customers\).*not a LEAF "
                                        r"study"):
        Study(tmp_path / "s")
    assert (tmp_path / "s" / STUDY_FILE).read_bytes() == before


def test_a_locked_study_is_one_error(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2)
    (rater, _), = study.add_raters(1)
    opened = Study(study.folder, timeout=0.2)
    holder = sqlite3.connect(study.path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DataError, match=r"study.sqlite: the study is locked by another "
                                            r"program \(waited 0.2 s\)"):
            opened.record(rater.id, 0, 3.0)
    finally:
        holder.rollback()
        holder.close()
    assert opened.record(rater.id, 0, 3.0) == 1


def test_a_study_in_a_read_only_folder_is_read_but_not_written(read_only_study: Study) -> None:
    opened = Study(read_only_study.folder)
    assert opened.read_only and [r.value for r in opened.ratings()] == [4.0]
    with pytest.raises(DataError, match=r"cannot write the study .*not damaged.*writable"):
        opened.require_writable()
    with pytest.raises(DataError, match=r"cannot write the study"):
        opened.add_raters(1)


def test_a_study_cannot_be_made_onto_a_file(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "a.jpg", seed=1)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(DataError, match="taken: is a file, not a folder"):
        Study.create(tmp_path / "taken", read_image_list(tmp_path / "photos"), StudySettings())
    assert (tmp_path / "taken").read_text() == "x"


def test_ratings_written_together_are_each_checked(study: Study) -> None:
    (one, _), (two, _) = study.add_raters(2)
    results = study.record_many([(one.id, 0, 3.0), (one.id, 0, 3.0), (one.id, 0, 4.0),
                                 (one.id, 5, 1.0), (two.id, 0, 2.0), (one.id, 1, 5.0)])
    assert results[:2] == [1, 1] and results[4:] == [1, 2]
    assert [type(r) for r in results[2:4]] == [RatingConflict, RatingConflict]
    assert [(r.rater_id, r.position, r.value) for r in study.ratings()] == [
        (one.id, 0, 3.0), (one.id, 1, 5.0), (two.id, 0, 2.0)]
