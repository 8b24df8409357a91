"""The judgment store: SQLite, one row per judgment, written as each judgment arrives.

Keys: (image content hash, teacher id, prompt version) for point-wise judgments and
(hash A, hash B, teacher id, prompt version, source) for pair-wise ones, with A < B so a pair
asked as (B, A) finds the same row. A failure is stored with its error and retried next run; it
never turns into a score.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from leafiqa.errors import DataError, quoted
from leafiqa.redact import redact
from leafiqa.teachers.protocol import JudgmentFailure, PairJudgment, PointJudgment

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS point_judgments (
    image_key TEXT NOT NULL,
    teacher_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    status TEXT NOT NULL,            -- 'ok' or 'failed'
    levels TEXT,                     -- JSON list, best first
    probs TEXT,                      -- JSON list, same order
    score REAL,
    reliability REAL,
    method TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    PRIMARY KEY (image_key, teacher_id, prompt_version)
);
CREATE TABLE IF NOT EXISTS pair_judgments (
    key_a TEXT NOT NULL,
    key_b TEXT NOT NULL,
    teacher_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    source TEXT NOT NULL,            -- 'queried' or 'derived'
    status TEXT NOT NULL,
    p_first_ab REAL,
    p_first_ba REAL,
    prob_a_better REAL,
    reliability REAL,
    method TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    PRIMARY KEY (key_a, key_b, teacher_id, prompt_version, source)
);
CREATE TABLE IF NOT EXISTS claims (  -- leases: concurrent teachers split the work
    kind TEXT NOT NULL,              -- 'point' or 'pair'
    claim_key TEXT NOT NULL,         -- image key, or 'key_a,key_b' with key_a < key_b
    teacher_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    owner TEXT NOT NULL,             -- host:pid:random of the process holding the lease
    expires_at REAL NOT NULL,
    heartbeat REAL,                  -- last sign of life of the owner (NULL: older LEAF)
    PRIMARY KEY (kind, claim_key, teacher_id, prompt_version)
);
"""
LEAF_TABLES = {"images", "point_judgments", "pair_judgments", "claims"}
# PRAGMA application_id of a LEAF store ("LEAF" in ASCII): a file of another program is
# recognised before LEAF adds its tables to it
APPLICATION_ID = 0x4C454146

LEASE_SECONDS = 1800.0
# A process holding leases stamps them every HEARTBEAT_SECONDS; a lease whose stamp is older
# than STALE_SECONDS (its owner was killed, on this host or another) is taken over at once
# rather than after LEASE_SECONDS, as is one whose owner is a dead process of this host.
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0
HOST = socket.gethostname()

T = TypeVar("T")


def _folder_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried: permission bits say nothing for
    root, a read-only mount or an immutable folder)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def owner_alive(owner: str) -> bool:
    """False when ``owner`` (host:pid:…) is a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return True  # another machine's process: only its heartbeat tells
    return process_running(int(pid_text))


def process_running(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and has not exited (a zombie, exited but
    not yet reaped by its parent, counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: the signal test is all there is
    return state not in {"Z", "X"}


def _sql(method: Callable[..., T]) -> Callable[..., T]:
    """SQLite errors of a store operation as one ``DataError`` naming the store and what to
    do (a locked store, a read-only folder, damage found deep in the file)."""
    @functools.wraps(method)
    def guarded(self: JudgmentStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            raise self._error(error) from None
    return guarded


def lease_held(owner: str, expires_at: float, heartbeat: float | None, now: float) -> bool:
    """Whether a lease still keeps other processes off its job: not expired, its owner not a
    dead process of this host, and its heartbeat (if the owner's LEAF stamps one) fresh."""
    if expires_at <= now or not owner_alive(owner):
        return False
    return heartbeat is None or now - heartbeat <= STALE_SECONDS


class _ForeignFile(sqlite3.DatabaseError):
    """A SQLite file that belongs to another program."""


class _Heartbeat:
    """Stamps this store handle's leases every ``HEARTBEAT_SECONDS`` from a thread of its own
    (a judgment may take minutes; the stamp shows the owner is alive meanwhile)."""

    def __init__(self, path: str, owner: str, timeout: float) -> None:
        self.path, self.owner, self.timeout = path, owner, timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leaf-lease-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with sqlite3.connect(self.path, timeout=self.timeout) as db:
                    db.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                               (time.time(), self.owner))
                db.close()
            except sqlite3.Error:
                continue  # a busy store: the next beat tries again

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def pair_claim_key(key_a: str, key_b: str) -> str:
    return ",".join(sorted((key_a, key_b)))


def _chunks(values: Sequence[str], size: int = 900) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class JudgmentStore:
    """``with JudgmentStore("judgments.sqlite") as store: ...``"""

    def __init__(self, path: str | Path = ":memory:", create: bool = True,
                 timeout: float = 30.0) -> None:
        """``create=False``: a missing file is an error (reading commands must not leave an
        empty store behind a typo), and a store in a read-only folder is opened read-only.
        A file that is not a SQLite judgment store, a store locked by another program for
        ``timeout`` seconds, a folder LEAF cannot write in: each a ``DataError`` naming the
        file and what to do."""
        self.path = str(path)
        self.timeout = timeout
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.read_only = False
        self._heartbeat: _Heartbeat | None = None
        if self.path != ":memory:":
            if not create and not Path(self.path).is_file():
                raise DataError(f"{quoted(self.path)}: no judgment store here (run `leaf teach` "
                                "first or check the path)")
            if Path(self.path).is_dir():
                raise DataError(f"{quoted(self.path)}: is a folder, not a judgment store file")
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DataError(f"{quoted(self.path)}: cannot create its folder "
                                f"({error.strerror or error})") from None
            if not create and not _folder_writable(Path(self.path).parent):
                self.read_only = True  # WAL needs its -wal/-shm files beside the store
        try:
            if self.read_only:
                uri = Path(self.path).resolve().as_uri() + "?immutable=1"
                self._db = sqlite3.connect(uri, uri=True, timeout=timeout)
            else:
                self._db = sqlite3.connect(self.path, timeout=timeout)
        except sqlite3.Error as error:
            raise self._error(error, opening=True) from None
        try:
            self._check_foreign()
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                self._upgrade()
                self._db.commit()
            self._check_columns()
        except sqlite3.Error as error:
            problem = self._error(error, opening=True)
            self._db.close()
            raise problem from None

    def _error(self, error: sqlite3.Error, opening: bool = False) -> DataError:
        """What a SQLite error means for the user, as one line naming the store."""
        name = quoted(self.path)
        text = str(error)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return DataError(f"{name}: the judgment store is locked by another program (waited "
                             f"{self.timeout:g} s); close the program holding it (a sqlite3 "
                             "shell, a viewer) or wait for it, then rerun")
        if self.path != ":memory:" and ("readonly" in lowered or "read-only" in lowered
                                        or "unable to open" in lowered
                                        or "disk i/o" in lowered):
            folder = Path(self.path).parent
            if not _folder_writable(folder) or not os.access(self.path, os.W_OK):
                return DataError(
                    f"{name}: cannot write the judgment store or its journal files in "
                    f"{quoted(folder)} ({text}); the store itself is not damaged: make the "
                    "folder and the file writable, or copy the store to a writable folder")
            return DataError(f"{name}: cannot open the judgment store ({text})")
        if isinstance(error, _ForeignFile):
            return DataError(f"{name}: {text}; not a LEAF judgment store (LEAF leaves it as it "
                             "is: give --store a new file name)")
        what = "not a readable LEAF judgment store" if opening else "the judgment store is damaged"
        return DataError(f"{name}: {what} ({text}); restore it from a backup or a `leaf "
                         "judgments export` of a good copy")

    def _check_foreign(self) -> None:
        """A SQLite file of another program is refused before LEAF adds its tables to it."""
        application_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if application_id not in (0, APPLICATION_ID):
            raise _ForeignFile(f"a SQLite file of another program (application id "
                               f"{application_id:#x})")
        if tables and not tables & LEAF_TABLES:
            shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
            raise _ForeignFile(f"a SQLite file of another program (tables: {shown})")

    def _upgrade(self) -> None:
        self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(claims)")}
        if "heartbeat" not in columns:  # a store of an earlier LEAF
            self._db.execute("ALTER TABLE claims ADD COLUMN heartbeat REAL")

    def _check_columns(self) -> None:
        """A SQLite file of another program (same table names, other columns) is refused
        before a query fails half-way."""
        for table in ("point_judgments", "pair_judgments"):
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            wanted = {"teacher_id", "prompt_version", "status", "error", "attempts"}
            if not wanted <= columns:
                raise sqlite3.DatabaseError(f"table {table} lacks columns "
                                            f"{sorted(wanted - columns)}")

    def __enter__(self) -> JudgmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self._db.close()

    # -- writing (each call commits: a killed run keeps everything written so far) -----------

    @_sql
    def register_images(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(image_key, name, path) rows, for exports that people can read."""
        self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)", list(rows))
        self._db.commit()

    @_sql
    def put_point(self, judgment: PointJudgment) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO point_judgments "
            "(image_key, teacher_id, prompt_version, status, levels, probs, score, reliability, "
            "method, error, attempts, created_at) VALUES (?, ?, ?, 'ok', ?, ?, ?, ?, ?, NULL, "
            "COALESCE((SELECT attempts + 1 FROM point_judgments WHERE image_key = ? AND "
            "teacher_id = ? AND prompt_version = ?), 1), ?)",
            (
                judgment.image_key, judgment.teacher_id, judgment.prompt_version,
                json.dumps(list(judgment.levels)), json.dumps(list(judgment.probs)),
                judgment.score, judgment.reliability, judgment.method,
                judgment.image_key, judgment.teacher_id, judgment.prompt_version, time.time(),
            ),
        )
        self._db.commit()

    @_sql
    def put_pair(self, judgment: PairJudgment) -> None:
        self._insert_pair(judgment)
        self._db.commit()

    @_sql
    def put_pairs(self, judgments: Iterable[PairJudgment]) -> None:
        """Bulk insert in one transaction (derived pairs cost nothing to recompute)."""
        for judgment in judgments:
            self._insert_pair(judgment)
        self._db.commit()

    def _insert_pair(self, judgment: PairJudgment) -> None:
        if judgment.key_a > judgment.key_b:
            judgment = judgment.flipped()
        self._db.execute(
            "INSERT OR REPLACE INTO pair_judgments "
            "(key_a, key_b, teacher_id, prompt_version, source, status, p_first_ab, p_first_ba, "
            "prob_a_better, reliability, method, error, attempts, created_at) "
            "VALUES (?, ?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?, NULL, 1, ?)",
            (
                judgment.key_a, judgment.key_b, judgment.teacher_id, judgment.prompt_version,
                judgment.source, judgment.p_first_ab, judgment.p_first_ba,
                judgment.prob_a_better, judgment.reliability, judgment.method, time.time(),
            ),
        )

    @_sql
    def put_failure(self, failure: JudgmentFailure) -> None:
        now = time.time()
        if failure.kind == "point":
            (key,) = failure.keys
            self._db.execute(
                "INSERT INTO point_judgments (image_key, teacher_id, prompt_version, status, "
                "error, attempts, created_at) VALUES (?, ?, ?, 'failed', ?, 1, ?) "
                "ON CONFLICT DO UPDATE SET error = excluded.error, attempts = attempts + 1, "
                "created_at = excluded.created_at WHERE status = 'failed'",
                (key, failure.teacher_id, failure.prompt_version, redact(failure.error), now),
            )
        else:
            key_a, key_b = sorted(failure.keys)
            self._db.execute(
                "INSERT INTO pair_judgments (key_a, key_b, teacher_id, prompt_version, source, "
                "status, error, attempts, created_at) VALUES (?, ?, ?, ?, 'queried', 'failed', "
                "?, 1, ?) ON CONFLICT DO UPDATE SET error = excluded.error, "
                "attempts = attempts + 1, created_at = excluded.created_at "
                "WHERE status = 'failed'",
                (key_a, key_b, failure.teacher_id, failure.prompt_version, redact(failure.error),
                 now),
            )
        self._db.commit()

    # -- leases: several `leaf teach` processes on one store split the work -------------------

    @_sql
    def claim(self, kind: str, keys: Sequence[str], teacher_id: str, prompt_version: str,
              lease_seconds: float = LEASE_SECONDS) -> list[str]:
        """The keys this store handle may ask now: not yet judged, and not leased by another
        live process (an expired lease, from a killed run, is taken over)."""
        now = time.time()
        got: list[str] = []
        self._db.execute("BEGIN IMMEDIATE")  # one claimer at a time: no two get the same key
        try:
            for key in dict.fromkeys(keys):
                row = self._db.execute(
                    "SELECT owner, expires_at, heartbeat FROM claims WHERE kind = ? AND "
                    "claim_key = ? AND teacher_id = ? AND prompt_version = ?",
                    (kind, key, teacher_id, prompt_version)).fetchone()
                if row is not None and row[0] != self.owner and lease_held(
                        row[0], row[1], row[2], now=now):
                    continue
                if self._judged(kind, key, teacher_id, prompt_version):
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO claims (kind, claim_key, teacher_id, prompt_version, "
                    "owner, expires_at, heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind, key, teacher_id, prompt_version, self.owner, now + lease_seconds,
                     now))
                got.append(key)
            self._db.commit()
        except BaseException:
            self._db.rollback()
            raise
        if got and self._heartbeat is None and self.path != ":memory:":
            self._heartbeat = _Heartbeat(self.path, self.owner, self.timeout)
        return got

    @_sql
    def release(self, kind: str, keys: Sequence[str], teacher_id: str,
                prompt_version: str) -> None:
        self._db.executemany(
            "DELETE FROM claims WHERE kind = ? AND claim_key = ? AND teacher_id = ? AND "
            "prompt_version = ? AND owner = ?",
            [(kind, key, teacher_id, prompt_version, self.owner) for key in keys])
        self._db.commit()

    def _judged(self, kind: str, key: str, teacher_id: str, prompt_version: str) -> bool:
        if kind == "point":
            return self._db.execute(
                "SELECT 1 FROM point_judgments WHERE image_key = ? AND teacher_id = ? AND "
                "prompt_version = ? AND status = 'ok'", (key, teacher_id, prompt_version)
            ).fetchone() is not None
        key_a, _, key_b = key.partition(",")
        return self.has_pair(key_a, key_b, teacher_id, prompt_version)

    # -- reading --------------------------------------------------------------------------------

    @_sql
    def points(
        self, teacher_id: str, prompt_version: str | None = None, keys: Sequence[str] | None = None
    ) -> dict[str, PointJudgment]:
        """Successful point-wise judgments of a teacher, by image key."""
        query = (
            "SELECT p.image_key, p.teacher_id, p.prompt_version, p.levels, p.probs, p.score, "
            "p.reliability, p.method, COALESCE(i.name, '') FROM point_judgments p "
            "LEFT JOIN images i USING (image_key) WHERE p.status = 'ok' AND p.teacher_id = ?"
        )
        params: list[object] = [teacher_id]
        if prompt_version is not None:
            query += " AND p.prompt_version = ?"
            params.append(prompt_version)
        rows = self._select_for_keys(query, params, "p.image_key", keys)
        return {
            row[0]: PointJudgment(
                image_key=row[0], teacher_id=row[1], prompt_version=row[2],
                levels=tuple(json.loads(row[3])), probs=tuple(json.loads(row[4])),
                score=row[5], reliability=row[6], method=row[7], image_name=row[8],
            )
            for row in rows
        }

    @_sql
    def pairs(
        self,
        teacher_id: str,
        prompt_version: str | None = None,
        source: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[PairJudgment]:
        """Successful pair-wise judgments; with ``keys``, those whose both images are in it."""
        query = (
            "SELECT key_a, key_b, teacher_id, prompt_version, p_first_ab, p_first_ba, "
            "prob_a_better, reliability, source, method FROM pair_judgments "
            "WHERE status = 'ok' AND teacher_id = ?"
        )
        params: list[object] = [teacher_id]
        if prompt_version is not None:
            query += " AND prompt_version = ?"
            params.append(prompt_version)
        if source is not None:
            query += " AND source = ?"
            params.append(source)
        rows = self._db.execute(query, params).fetchall()
        wanted = set(keys) if keys is not None else None
        return [
            PairJudgment(
                key_a=r[0], key_b=r[1], teacher_id=r[2], prompt_version=r[3], p_first_ab=r[4],
                p_first_ba=r[5], prob_a_better=r[6], reliability=r[7], source=r[8], method=r[9],
            )
            for r in rows
            if wanted is None or (r[0] in wanted and r[1] in wanted)
        ]

    @_sql
    def has_pair(self, key_a: str, key_b: str, teacher_id: str, prompt_version: str) -> bool:
        key_a, key_b = sorted((key_a, key_b))
        row = self._db.execute(
            "SELECT 1 FROM pair_judgments WHERE key_a = ? AND key_b = ? AND teacher_id = ? AND "
            "prompt_version = ? AND status = 'ok' AND source = 'queried'",
            (key_a, key_b, teacher_id, prompt_version),
        ).fetchone()
        return row is not None

    @_sql
    def failures(self, teacher_id: str | None = None) -> list[tuple[str, str, str]]:
        """(kind, keys, error) of stored failures."""
        out: list[tuple[str, str, str]] = []
        for kind, table, key_sql in (
            ("point", "point_judgments", "image_key"),
            ("pair", "pair_judgments", "key_a || ',' || key_b"),
        ):
            query = f"SELECT {key_sql}, error FROM {table} WHERE status = 'failed'"
            params: list[object] = []
            if teacher_id is not None:
                query += " AND teacher_id = ?"
                params.append(teacher_id)
            out.extend((kind, row[0], row[1]) for row in self._db.execute(query, params))
        return out

    @_sql
    def teachers(self) -> list[tuple[str, str, int, int]]:
        """(teacher_id, prompt_version, point count, pair count) of successful judgments."""
        points = dict(
            ((r[0], r[1]), r[2])
            for r in self._db.execute(
                "SELECT teacher_id, prompt_version, COUNT(*) FROM point_judgments "
                "WHERE status = 'ok' GROUP BY 1, 2"
            )
        )
        pairs = dict(
            ((r[0], r[1]), r[2])
            for r in self._db.execute(
                "SELECT teacher_id, prompt_version, COUNT(*) FROM pair_judgments "
                "WHERE status = 'ok' GROUP BY 1, 2"
            )
        )
        return [(t, v, points.get((t, v), 0), pairs.get((t, v), 0))
                for (t, v) in sorted(set(points) | set(pairs))]

    def resolve_teacher(self, teacher_id: str | None = None) -> str:
        """The teacher whose judgments to read: ``teacher_id`` when the store holds its
        judgments, else the only teacher there is; a DataError naming the store otherwise."""
        found = sorted({teacher for teacher, *_ in self.teachers()})
        if teacher_id:
            if teacher_id not in found:
                raise DataError(f"{self.path}: no judgments by teacher '{teacher_id}'; found "
                                f"{found}")
            return teacher_id
        if len(found) != 1:
            raise DataError(f"{self.path}: holds judgments of {found or 'no teacher'}; "
                            "choose one with --teacher-id")
        return found[0]

    @_sql
    def image_names(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT image_key, name FROM images"))

    @_sql
    def count(self, table: str, teacher_id: str | None = None, status: str = "ok") -> int:
        if table not in {"point_judgments", "pair_judgments"}:
            raise ValueError(table)
        query = f"SELECT COUNT(*) FROM {table} WHERE status = ?"
        params: list[object] = [status]
        if teacher_id is not None:
            query += " AND teacher_id = ?"
            params.append(teacher_id)
        return int(self._db.execute(query, params).fetchone()[0])

    @_sql
    def table(self, table: str) -> tuple[list[str], list[tuple]]:
        if table not in {"point_judgments", "pair_judgments", "images"}:
            raise ValueError(table)
        cursor = self._db.execute(f"SELECT * FROM {table}")
        return [d[0] for d in cursor.description], cursor.fetchall()

    def _select_for_keys(
        self, query: str, params: list[object], column: str, keys: Sequence[str] | None
    ) -> list[tuple]:
        if keys is None:
            return self._db.execute(query, params).fetchall()
        rows: list[tuple] = []
        for chunk in _chunks(list(dict.fromkeys(keys))):
            placeholders = ",".join("?" * len(chunk))
            rows.extend(
                self._db.execute(f"{query} AND {column} IN ({placeholders})", [*params, *chunk])
            )
        return rows
