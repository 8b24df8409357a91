"""The judgment store under concurrent teachers, corrupt files and secrets (issue 13, items 6,
7 and 8)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from leafiqa.data import read_folder
from leafiqa.errors import DataError
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.protocol import JudgmentFailure
from tests.judgments.test_store import CountingTeacher


class SlowTeacher(CountingTeacher):
    """Takes a little time per judgment, so two processes overlap."""

    def level_probs(self, item):  # noqa: ANN001, ANN201
        time.sleep(0.01)
        return super().level_probs(item)


def test_two_teachers_on_one_store_split_the_work(image_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    JudgmentStore(path).close()
    manifest = read_folder(image_folder)
    teachers = [SlowTeacher(), SlowTeacher()]
    reports = [None, None]
    start = threading.Barrier(2)

    def run(index: int) -> None:
        with JudgmentStore(path) as store:
            start.wait()
            reports[index] = teach(teachers[index], manifest, store, progress=False,
                                   claim_chunk=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asked = teachers[0].calls + teachers[1].calls
    assert sorted(asked) == sorted(manifest.names)  # each image asked exactly once
    assert teachers[0].calls and teachers[1].calls  # both did some of it
    with JudgmentStore(path) as store:
        assert len(store.points("counting")) == 12
        assert store.table("point_judgments")[1] and not store._db.execute(
            "SELECT COUNT(*) FROM claims").fetchone()[0]  # leases released


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with JudgmentStore(path) as first, JudgmentStore(path) as second:
        assert first.claim("point", ["a", "b"], "t", "v1") == ["a", "b"]
        assert second.claim("point", ["a", "b", "c"], "t", "v1") == ["c"]
        assert first.claim("point", ["d"], "t", "v1", lease_seconds=-1) == ["d"]
        assert second.claim("point", ["d"], "t", "v1") == ["d"]  # a killed run's lease


def test_corrupt_file_and_missing_store(tmp_path: Path) -> None:
    corrupt = tmp_path / "c.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(DataError, match="c.sqlite"):
        JudgmentStore(corrupt)
    with pytest.raises(DataError, match="no judgment store"):
        JudgmentStore(tmp_path / "typo" / "x.sqlite", create=False)
    assert not (tmp_path / "typo").exists()


def test_api_keys_never_reach_the_store_or_the_log(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-0123456789abcdefXYZ"
    monkeypatch.setenv("LEAF_TEACHER_API_KEY", secret)
    with JudgmentStore(tmp_path / "s.sqlite") as store:
        store.put_failure(JudgmentFailure("point", ("k",), "t", "v1",
                                          f"HTTP 401: invalid key {secret} (Bearer {secret})"))
        (error,) = [row[2] for row in store.failures()]
    assert secret not in error and "[redacted]" in error
