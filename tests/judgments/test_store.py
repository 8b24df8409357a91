from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from leafiqa.data import read_folder
from leafiqa.data.manifest import ImageItem
from leafiqa.judgments.jsonl import export_store, import_jsonl
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.protocol import FIVE_LEVELS, JudgmentFailure, Teacher, TeacherError


class CountingTeacher(Teacher):
    """Scores images by their index in the name; can crash after N judgments."""

    teacher_id = "counting"
    prompt_version = "v1"
    levels = FIVE_LEVELS
    supports_pairs = True

    def __init__(self, crash_after: int | None = None, fail_names: Sequence[str] = ()) -> None:
        self.calls: list[str] = []
        self.crash_after = crash_after
        self.fail_names = set(fail_names)

    def level_probs(self, item: ImageItem):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("killed half-way")
        self.calls.append(item.name)
        if item.name in self.fail_names:
            raise TeacherError("server said no")
        index = int(item.name.split("_")[1][:2])
        probs = [0.01] * 5
        probs[min(4, index // 3)] = 0.96
        return probs, "logprobs"

    def first_better_prob(self, first: ImageItem, second: ImageItem):
        self.calls.append(f"{first.name}>{second.name}")
        return (0.8 if first.name < second.name else 0.3), "logprobs"


def test_killed_run_keeps_judgments_and_rerun_asks_only_the_rest(
        image_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    manifest = read_folder(image_folder)
    crashing = CountingTeacher(crash_after=5)
    with JudgmentStore(path) as store, pytest.raises(KeyboardInterrupt):
        teach(crashing, manifest, store, progress=False)
    with JudgmentStore(path) as store:  # a fresh process would see the same file
        assert len(store.points("counting")) == 5
        resumed = CountingTeacher()
        report = teach(resumed, manifest, store, pairs_per_image=2, progress=False)
        assert len([c for c in resumed.calls if ">" not in c]) == 7
        assert set(resumed.calls).isdisjoint(crashing.calls)
        assert report.points_new == 7 and report.points_stored_before == 5
        assert len(store.points("counting")) == 12
        pairs = store.pairs("counting", source="queried")
        assert len(pairs) == report.pairs_new > 0
        again = CountingTeacher()
        teach(again, manifest, store, pairs_per_image=2, progress=False)
        assert again.calls == []


def test_failures_are_stored_not_scored_and_retried(image_folder: Path) -> None:
    store = JudgmentStore()
    manifest = read_folder(image_folder)
    report = teach(CountingTeacher(fail_names=["image_03.jpg"]), manifest, store, progress=False)
    assert report.points_failed == 1 and report.points_new == 11
    assert "image_03.jpg" in report.errors[0]
    assert len(store.failures()) == 1
    retry = CountingTeacher()
    teach(retry, manifest, store, progress=False)
    assert retry.calls == ["image_03.jpg"] and not store.failures()


def test_pairs_are_stored_order_free(image_folder: Path) -> None:
    store = JudgmentStore()
    teacher = CountingTeacher()
    teach(teacher, read_folder(image_folder), store, pairs_per_image=3, progress=False)
    for pair in store.pairs("counting"):
        assert pair.key_a < pair.key_b
        assert store.has_pair(pair.key_b, pair.key_a, "counting", "v1")


def test_failure_record_does_not_overwrite_success() -> None:
    store = JudgmentStore()
    from leafiqa.teachers.protocol import make_point_judgment

    store.put_point(make_point_judgment(image_key="k", teacher_id="t", prompt_version="v",
                                        levels=("good", "poor"), probs=[0.7, 0.3],
                                        method="recorded"))
    store.put_failure(JudgmentFailure("point", ("k",), "t", "v", "late error"))
    assert store.points("t")["k"].score == pytest.approx(0.7)


def test_jsonl_round_trip_and_csv_export(image_folder: Path, tmp_path: Path) -> None:
    store = JudgmentStore()
    teach(CountingTeacher(), read_folder(image_folder), store, pairs_per_image=2, progress=False)
    (jsonl,) = export_store(store, tmp_path / "j.jsonl")
    other = JudgmentStore()
    counts = import_jsonl(other, jsonl)
    assert counts["point"] == 12 and counts["pair"] == len(store.pairs("counting"))
    assert other.points("counting").keys() == store.points("counting").keys()
    written = export_store(store, tmp_path / "j.csv")
    assert any("point_judgments" in p.name for p in written)
    assert all(p.is_file() for p in written)
