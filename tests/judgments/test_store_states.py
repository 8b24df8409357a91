"""Every state a judgment store can be in (issue 20, item 7): locked by another program, in a
read-only folder, damaged deep inside, another program's SQLite file, and leases left by a
process that was killed (kill -9 or SIGTERM) or whose heartbeat stopped."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leafiqa.data import read_folder
from leafiqa.errors import DataError
from leafiqa.judgments import store as store_module
from leafiqa.judgments.runner import hash_manifest, teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.protocol import FIVE_LEVELS, make_point_judgment
from tests.judgments.test_store import CountingTeacher

REPO = Path(__file__).resolve().parents[2]


def filled_store(path: Path, n: int = 3000) -> None:
    with JudgmentStore(path) as store:
        for i in range(n):
            store._db.execute(
                "INSERT INTO point_judgments (image_key, teacher_id, prompt_version, status, "
                "levels, probs, score, reliability, method, created_at) VALUES (?, 't', 'v1', "
                "'ok', ?, ?, 0.5, 0.5, 'logprobs', 0)",
                (f"key{i:06d}" + "x" * 40, json.dumps(FIVE_LEVELS), json.dumps([0.2] * 5)))
        store._db.commit()


def test_a_locked_store_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    JudgmentStore(path).close()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DataError, match=r"s\.sqlite: the judgment store is locked by "
                                            r"another program \(waited 0.2 s\)"):
            JudgmentStore(path, timeout=0.2)
    finally:
        holder.rollback()
        holder.close()
    with JudgmentStore(path, timeout=0.2) as store:  # once released, all is well
        holder = sqlite3.connect(path)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DataError, match="locked by another program"):
                store.put_point(make_point_judgment(
                    image_key="k", teacher_id="t", prompt_version="v1", levels=FIVE_LEVELS,
                    probs=[0.2] * 5, method="logprobs"))
        finally:
            holder.rollback()
            holder.close()


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can create files in: chmod for a user, chattr +i for root (permission
    bits do not stop root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    with JudgmentStore(folder / "s.sqlite") as store:
        store.put_point(make_point_judgment(image_key="k", teacher_id="t", prompt_version="v1",
                                            levels=FIVE_LEVELS, probs=[0.6, 0.1, 0.1, 0.1, 0.1],
                                            method="logprobs"))
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"running as root and chattr +i failed ({done.stderr.decode().strip()})")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


def test_a_healthy_store_in_a_read_only_folder(read_only_folder: Path) -> None:
    path = read_only_folder / "s.sqlite"
    with JudgmentStore(path, create=False) as store:  # reading commands still work
        assert list(store.points("t")) == ["k"]
    with pytest.raises(DataError) as caught:
        JudgmentStore(path)  # `leaf teach` needs to write
    message = str(caught.value)
    assert "is not damaged" in message and "writable" in message
    assert "backup" not in message
    result = CliRunner().invoke(_app(), ["judgments", "list", "--store", str(path)])
    assert result.exit_code == 0 and "t\tv1\tpoints=1" in result.output


def _app():  # noqa: ANN202
    from leafiqa.cli import app

    return app


def test_damage_deep_in_the_store_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path)
    data = bytearray(path.read_bytes())
    assert len(data) > 64 * 4096
    start, end = len(data) // 3, len(data) * 9 // 10  # the first pages (schema) stay intact
    data[start:end] = os.urandom(end - start)
    path.write_bytes(bytes(data))
    store = JudgmentStore(path)  # the first pages are intact: it opens
    with pytest.raises(DataError, match=r"s\.sqlite: .*damaged.*backup"):
        store.points("t")
    store.close()
    result = CliRunner().invoke(_app(), ["judgments", "export", "--out",
                                         str(tmp_path / "out.jsonl"), "--store", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "s.sqlite" in result.output


def test_another_programs_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO customers (name) VALUES ('ada')")
    other.close()
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"app\.db: a SQLite file of another program "
                                        r"\(tables: customers\)"):
        JudgmentStore(path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as other:
        tables = {row[0] for row in other.execute("SELECT name FROM sqlite_master")}
    other.close()
    assert tables == {"customers"}
    with sqlite3.connect(tmp_path / "empty-app.db") as other:
        other.execute("PRAGMA application_id = 1234")
        other.execute("CREATE TABLE images (x)")
    other.close()
    with pytest.raises(DataError, match="another program"):
        JudgmentStore(tmp_path / "empty-app.db")


CLAIMER = """
import sys, time
from leafiqa.judgments.store import JudgmentStore
store = JudgmentStore(sys.argv[1])
keys = sys.argv[2].split(",")
assert store.claim("point", keys, "counting", "v1") == keys
print("claimed", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_leases_of_a_killed_process_are_released(image_folder: Path, tmp_path: Path,
                                                 sig: signal.Signals) -> None:
    """After kill -9 (or SIGTERM) the dead run's leases blocked every job for 30 minutes and
    a rerun said "left to another process" and exited 0."""
    path = tmp_path / "s.sqlite"
    manifest = read_folder(image_folder)
    keys = list(hash_manifest(manifest))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", CLAIMER, str(path), ",".join(keys)],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "claimed"
        with JudgmentStore(path) as store:  # alive: its leases hold
            assert store.claim("point", keys, "counting", "v1") == []
    finally:
        process.send_signal(sig)
        process.wait(timeout=30)
    with JudgmentStore(path) as store:
        report = teach(CountingTeacher(), manifest, store, pairs_per_image=0, progress=False)
    assert report.claimed_elsewhere == 0 and report.points_new == len(keys)
    assert "left to another process" not in report.summary()


def test_a_lease_with_a_stale_heartbeat_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    now = time.time()
    with JudgmentStore(path) as store:
        for key, beat in (("stale", now - 3600), ("fresh", now)):
            store._db.execute(
                "INSERT INTO claims (kind, claim_key, teacher_id, prompt_version, owner, "
                "expires_at, heartbeat) VALUES ('point', ?, 't', 'v1', ?, ?, ?)",
                (key, "another-host:4242:abcd", now + 1800, beat))
        store._db.commit()
        assert store.claim("point", ["stale", "fresh"], "t", "v1") == ["stale"]


def test_leases_are_stamped_while_their_owner_lives(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "HEARTBEAT_SECONDS", 0.05)
    path = tmp_path / "s.sqlite"
    with JudgmentStore(path) as store:
        assert store.claim("point", ["a"], "t", "v1") == ["a"]
        (first,) = store._db.execute("SELECT heartbeat FROM claims").fetchone()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.1)
            (beat,) = store._db.execute("SELECT heartbeat FROM claims").fetchone()
            if beat > first:
                break
        assert beat > first


def test_a_store_of_an_earlier_leaf_gets_the_heartbeat_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(store_module.SCHEMA.replace(
            "    heartbeat REAL,                  -- last sign of life of the owner (NULL: "
            "older LEAF)\n", ""))
        old.execute("INSERT INTO claims VALUES ('point', 'a', 't', 'v1', 'h:1:x', 0)")
    old.close()
    with JudgmentStore(path) as store:
        assert store.claim("point", ["a", "b"], "t", "v1") == ["a", "b"]
