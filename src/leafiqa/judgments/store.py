"""The judgment store: SQLite, one row per judgment, written as each judgment arrives.

Keys: (image content hash, teacher id, prompt version) for point-wise judgments and
(hash A, hash B, teacher id, prompt version, source) for pair-wise ones, with A < B so a pair
asked as (B, A) finds the same row. A failure is stored with its error and retried next run; it
never turns into a score.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from leafiqa.errors import DataError
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
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (kind, claim_key, teacher_id, prompt_version)
);
"""

LEASE_SECONDS = 1800.0


def pair_claim_key(key_a: str, key_b: str) -> str:
    return ",".join(sorted((key_a, key_b)))


def _chunks(values: Sequence[str], size: int = 900) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class JudgmentStore:
    """``with JudgmentStore("runs/judgments.sqlite") as store: ...``"""

    def __init__(self, path: str | Path = ":memory:", create: bool = True) -> None:
        """``create=False``: a missing file is an error (reading commands must not leave an
        empty store behind a typo). A file that is not a SQLite judgment store is a
        ``DataError`` naming it."""
        self.path = str(path)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if self.path != ":memory:":
            if not create and not Path(self.path).is_file():
                raise DataError(f"{self.path}: no judgment store here (run `leaf teach` first "
                                "or check the path)")
            if Path(self.path).is_dir():
                raise DataError(f"{self.path}: is a folder, not a judgment store file")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as error:
            raise DataError(f"{self.path}: cannot open the judgment store ({error})") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.commit()
            self._check_columns()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise DataError(f"{self.path}: not a readable LEAF judgment store ({error}); "
                            "restore it from a backup or `leaf judgments export` of a good "
                            "copy") from None

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
        self._db.close()

    # -- writing (each call commits: a killed run keeps everything written so far) -----------

    def register_images(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(image_key, name, path) rows, for exports that people can read."""
        self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)", list(rows))
        self._db.commit()

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

    def put_pair(self, judgment: PairJudgment) -> None:
        self._insert_pair(judgment)
        self._db.commit()

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
                    "SELECT owner, expires_at FROM claims WHERE kind = ? AND claim_key = ? AND "
                    "teacher_id = ? AND prompt_version = ?",
                    (kind, key, teacher_id, prompt_version)).fetchone()
                if row is not None and row[0] != self.owner and row[1] > now:
                    continue
                if self._judged(kind, key, teacher_id, prompt_version):
                    continue
                self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                                 (kind, key, teacher_id, prompt_version, self.owner,
                                  now + lease_seconds))
                got.append(key)
            self._db.commit()
        except BaseException:
            self._db.rollback()
            raise
        return got

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

    def has_pair(self, key_a: str, key_b: str, teacher_id: str, prompt_version: str) -> bool:
        key_a, key_b = sorted((key_a, key_b))
        row = self._db.execute(
            "SELECT 1 FROM pair_judgments WHERE key_a = ? AND key_b = ? AND teacher_id = ? AND "
            "prompt_version = ? AND status = 'ok' AND source = 'queried'",
            (key_a, key_b, teacher_id, prompt_version),
        ).fetchone()
        return row is not None

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

    def image_names(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT image_key, name FROM images"))

    def count(self, table: str, teacher_id: str | None = None, status: str = "ok") -> int:
        if table not in {"point_judgments", "pair_judgments"}:
            raise ValueError(table)
        query = f"SELECT COUNT(*) FROM {table} WHERE status = ?"
        params: list[object] = [status]
        if teacher_id is not None:
            query += " AND teacher_id = ?"
            params.append(teacher_id)
        return int(self._db.execute(query, params).fetchone()[0])

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
