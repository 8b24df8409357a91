"""A rating study: the images people rate, its settings, and a SQLite store of raters, their
planned order and every rating.

Every write is one short transaction on its own connection (WAL, ``synchronous=FULL``), so a
rating that was acknowledged is on disk even if the server is killed the next instant, and two
raters writing at once only wait a few milliseconds for each other (``busy_timeout``)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from leafiqa.data.readers import IMAGE_SUFFIXES, walk_images
from leafiqa.errors import DataError

STUDY_FILE = "study.sqlite"
ACR_WORDS = ("Bad", "Poor", "Fair", "Good", "Excellent")  # ITU-T P.910 ACR, levels 1..5
SCALES = {"acr": (1.0, 5.0), "slider": (0.0, 100.0)}
TOKEN_BYTES = 24  # 192 bits


@dataclass
class StudySettings:
    """What the study owner chooses. ``repeats``: images each rater sees twice (later in their
    order) to measure consistency. ``gold``: hidden images with a known answer on the study's
    scale. (Which raters the export keeps: ``screening.ScreeningRules``.)"""

    title: str = "Image quality study"
    instructions: str = ("Rate the overall quality of each image as you see it: sharpness, "
                         "noise, exposure, colour and artefacts, not whether you like the "
                         "subject. There are no right answers; take a few seconds per image.")
    scale: str = "acr"
    repeats: int = 2
    min_repeat_gap: int = 3
    seed: int = 0
    gold: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise DataError(f"scale: '{self.scale}' is not one of {sorted(SCALES)}")
        if self.repeats < 0:
            raise DataError(f"repeats: must be 0 or more, got {self.repeats}")
        low, high = SCALES[self.scale]
        off = {name: value for name, value in self.gold.items() if not low <= value <= high}
        if off:
            raise DataError(f"gold: answers off the {self.scale} scale [{low:g}, {high:g}]: "
                            + ", ".join(f"{name}={value:g}" for name, value in off.items()))

    @property
    def low(self) -> float:
        return SCALES[self.scale][0]

    @property
    def high(self) -> float:
        return SCALES[self.scale][1]

    @property
    def level(self) -> float:
        """One ACR level on this study's scale (a 0–100 slider has 5 anchors 25 apart)."""
        return (self.high - self.low) / 4.0


@dataclass(frozen=True)
class StudyImage:
    id: int
    name: str
    path: Path
    gold: float | None


@dataclass(frozen=True)
class Rater:
    id: int
    label: str
    revoked: bool
    total: int
    done: int


@dataclass(frozen=True)
class Rating:
    rater_id: int
    position: int
    image_id: int
    value: float
    repeat: bool


@dataclass(frozen=True)
class PlanStep:
    position: int
    image_id: int
    repeat: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_image_list(source: Path, root: Path | None = None) -> list[tuple[str, Path]]:
    """``(name, path)`` for a folder's images or the rows of a ``leaf select`` output: a CSV
    with a ``name``, ``path`` or ``image`` column, or JSON (a list of such records or of names,
    or ``{"images": [...]}``). With both ``name`` and ``path`` (``leaf select`` writes
    ``order,name,path``) the name is kept for the labels and the path finds the file; relative
    paths are under ``root``, by default the list's folder. Missing files: one error naming
    them."""
    if source.is_dir():
        paths, _ = walk_images(source)
        if not paths:
            raise DataError(f"{source}: no image files found")
        return [(p.relative_to(source).as_posix(), p.resolve()) for p in paths]
    if not source.is_file():
        raise DataError(f"{source}: no such file or folder")
    entries = _entries_from_file(source)
    base = root or source.parent
    found: list[tuple[str, Path]] = []
    missing: list[str] = []
    for name, where in entries:
        # a relative path is tried under the list's folder, then the working folder (`leaf
        # select` writes paths as the data set was given on its command line), then the name
        candidates = [Path(where)] if Path(where).is_absolute() else [
            base / where, Path.cwd() / where, base / name]
        path = next((c for c in candidates if c.is_file()), None)
        if path is not None:
            found.append((name, path.resolve()))
        else:
            missing.append(where)
    if missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)"
                                           if len(missing) > 10 else "")
        raise DataError(f"{source}: {len(missing)} image(s) not found under {base}: {shown}")
    if not found:
        raise DataError(f"{source}: lists no images")
    names = [name for name, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{source}: images listed twice: {', '.join(duplicates[:10])}")
    return found


def _entry(record: dict, where: str) -> tuple[str, str]:
    name = next((str(record[k]).strip() for k in ("name", "path", "image")
                 if record.get(k) and str(record[k]).strip()), None)
    path = next((str(record[k]).strip() for k in ("path", "name", "image")
                 if record.get(k) and str(record[k]).strip()), None)
    if name is None or path is None:
        raise DataError(f"{where}: no name, path or image")
    return name, path


def _entries_from_file(source: Path) -> list[tuple[str, str]]:
    """``(name, where the file is)`` per listed image."""
    if source.suffix.lower() == ".json":
        try:
            payload = json.loads(source.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise DataError(f"{source}: not valid JSON ({error})") from None
        records = payload.get("images", payload) if isinstance(payload, dict) else payload
        if not isinstance(records, list):
            raise DataError(f"{source}: expected a list of images or {{\"images\": [...]}}")
        entries = []
        for index, record in enumerate(records):
            if isinstance(record, str) and record.strip():
                entries.append((record.strip(), record.strip()))
            elif isinstance(record, dict):
                entries.append(_entry(record, f"{source}: entry {index}"))
            else:
                raise DataError(f"{source}: entry {index} has no name, path or image")
        return entries
    if source.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{source}: give a folder of images or a CSV/JSON list, not one image")
    try:
        with source.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"name", "path", "image"} & set(reader.fieldnames or []):
                raise DataError(f"{source}: needs a 'name', 'path' or 'image' column "
                                f"(has {reader.fieldnames})")
            return [_entry(row, f"{source}: row {number}")
                    for number, row in enumerate(reader, start=2)]
    except UnicodeDecodeError:
        raise DataError(f"{source}: not a text CSV file") from None


def plan_order(image_ids: Sequence[int], repeat_candidates: Sequence[int], repeats: int,
               rng: np.random.Generator, min_gap: int) -> list[PlanStep]:
    """A random order of every image once, then ``repeats`` of the candidates shown again, each
    more than ``min_gap`` steps after its first showing: repeats are drawn from the candidates
    shown early enough for that (others only when too few are), and a repeat that cannot keep
    the gap goes last."""
    order = [PlanStep(0, int(i), False) for i in rng.permutation(np.asarray(image_ids))]
    first = {step.image_id: k for k, step in enumerate(order)}
    candidates = [int(i) for i in repeat_candidates]
    early = [i for i in candidates if first[i] + min_gap + 1 < len(order)]
    late = sorted((i for i in candidates if i not in set(early)), key=first.__getitem__)
    count = min(repeats, len(candidates))
    chosen = [int(i) for i in rng.permutation(early)[:count]] if early else []
    chosen += late[: count - len(chosen)]
    for image_id in chosen:
        start = next(k for k, step in enumerate(order) if step.image_id == image_id)
        earliest = start + min_gap + 1
        at = len(order) if earliest >= len(order) else int(rng.integers(earliest, len(order) + 1))
        order.insert(at, PlanStep(0, image_id, True))
    return [PlanStep(k, step.image_id, step.repeat) for k, step in enumerate(order)]


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL, gold REAL);
CREATE TABLE IF NOT EXISTS raters (id INTEGER PRIMARY KEY, label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, revoked INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS plan (rater_id INTEGER NOT NULL REFERENCES raters(id),
    position INTEGER NOT NULL, image_id INTEGER NOT NULL REFERENCES images(id),
    repeat INTEGER NOT NULL, PRIMARY KEY (rater_id, position));
CREATE TABLE IF NOT EXISTS ratings (rater_id INTEGER NOT NULL REFERENCES raters(id),
    position INTEGER NOT NULL, image_id INTEGER NOT NULL REFERENCES images(id),
    value REAL NOT NULL, at REAL NOT NULL, PRIMARY KEY (rater_id, position));
"""


class RatingConflict(Exception):
    """A rating for a step other than the rater's next one (or a different value for one
    already stored)."""


class Study:
    """A study folder holding ``study.sqlite``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STUDY_FILE
        if not self.path.is_file():
            raise DataError(f"{self.folder}: not a study folder (no {STUDY_FILE}; make one with "
                            "`leaf rate create`)")
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        if row is None:
            raise DataError(f"{self.path}: study has no settings")
        stored = json.loads(row[0])  # a study made before screening's rules moved out of it
        known = {setting.name for setting in fields(StudySettings)}  # holds their old keys
        self.settings = StudySettings(**{k: v for k, v in stored.items() if k in known})

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @classmethod
    def create(cls, folder: str | Path, images: Sequence[tuple[str, Path]],
               settings: StudySettings, gold_images: Sequence[tuple[str, Path]] = ()) -> Study:
        folder = Path(folder)
        if (folder / STUDY_FILE).exists():
            raise DataError(f"{folder}: already holds a study ({STUDY_FILE})")
        names = {name for name, _ in images}
        clash = sorted(names & {name for name, _ in gold_images})
        if clash:
            raise DataError(f"gold images also listed as study images: {', '.join(clash)}")
        unknown = sorted(set(settings.gold) - {name for name, _ in gold_images})
        if unknown:
            raise DataError(f"gold answers for images not in the gold list: {', '.join(unknown)}")
        if settings.scale == "slider" and settings.gold and max(settings.gold.values()) <= 5:
            raise DataError("gold: every answer is 5 or less, as on the ACR scale (1–5), but the "
                            "study's scale is slider (0–100): give the gold answers on 0–100")
        folder.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(folder / STUDY_FILE, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("BEGIN")
            db.execute("INSERT INTO meta VALUES ('settings', ?)", (json.dumps(asdict(settings)),))
            db.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            db.executemany("INSERT INTO images (name, path, gold) VALUES (?, ?, NULL)",
                           [(name, str(path)) for name, path in images])
            db.executemany("INSERT INTO images (name, path, gold) VALUES (?, ?, ?)",
                           [(name, str(path), settings.gold[name]) for name, path in gold_images])
            db.execute("COMMIT")
        finally:
            db.close()
        return cls(folder)

    # --- admin -------------------------------------------------------------------------
    def set_admin_key(self) -> str:
        key = secrets.token_urlsafe(TOKEN_BYTES)
        with self.connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('admin_key', ?)", (token_hash(key),))
        return key

    def admin_key_matches(self, key: str) -> bool:
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key='admin_key'").fetchone()
        return row is not None and secrets.compare_digest(row[0], token_hash(key))

    def add_raters(self, count: int, prefix: str = "rater") -> list[tuple[Rater, str]]:
        """``count`` new raters, each with their own random order and a fresh token (returned
        once; only its hash is stored)."""
        images = self.images()
        study_ids = [image.id for image in images if image.gold is None]
        all_ids = [image.id for image in images]
        made: list[tuple[int, str, str]] = []
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            start = db.execute("SELECT COALESCE(MAX(id), 0) FROM raters").fetchone()[0]
            for k in range(count):
                token = secrets.token_urlsafe(TOKEN_BYTES)
                label = f"{prefix}{start + k + 1}"
                cursor = db.execute("INSERT INTO raters (label, token_hash, created) "
                                    "VALUES (?, ?, ?)", (label, token_hash(token), time.time()))
                rater_id = int(cursor.lastrowid or 0)
                rng = np.random.default_rng([self.settings.seed, rater_id])
                steps = plan_order(all_ids, study_ids, self.settings.repeats, rng,
                                   self.settings.min_repeat_gap)
                db.executemany("INSERT INTO plan VALUES (?, ?, ?, ?)",
                               [(rater_id, s.position, s.image_id, int(s.repeat)) for s in steps])
                made.append((rater_id, label, token))
            db.execute("COMMIT")
        raters = {rater.id: rater for rater in self.raters()}
        return [(raters[rater_id], token) for rater_id, _, token in made]

    def revoke(self, rater: str) -> Rater:
        """Revoke by label (``rater2``) or id; the rater's link stops working at once, their
        ratings stay (the export decides)."""
        with self.connect() as db:
            cursor = db.execute("UPDATE raters SET revoked=1 WHERE label=? OR CAST(id AS TEXT)=?",
                                (rater, rater))
        if cursor.rowcount == 0:
            raise DataError(f"{self.folder}: no rater '{rater}'")
        return next(r for r in self.raters() if rater in (r.label, str(r.id)))

    # --- reading ---------------------------------------------------------------------------
    def images(self) -> list[StudyImage]:
        with self.connect() as db:
            rows = db.execute("SELECT id, name, path, gold FROM images ORDER BY id").fetchall()
        return [StudyImage(int(i), str(n), Path(p), g) for i, n, p, g in rows]

    def raters(self) -> list[Rater]:
        with self.connect() as db:
            rows = db.execute(
                "SELECT r.id, r.label, r.revoked, "
                "(SELECT COUNT(*) FROM plan p WHERE p.rater_id=r.id), "
                "(SELECT COUNT(*) FROM ratings v WHERE v.rater_id=r.id) "
                "FROM raters r ORDER BY r.id").fetchall()
        return [Rater(int(i), str(label), bool(rev), int(total), int(done))
                for i, label, rev, total, done in rows]

    def rater_for_token(self, token: str) -> Rater | None:
        """The rater holding ``token``, or None (unknown or revoked)."""
        with self.connect() as db:
            row = db.execute("SELECT id FROM raters WHERE token_hash=? AND revoked=0",
                             (token_hash(token),)).fetchone()
        if row is None:
            return None
        return next((r for r in self.raters() if r.id == row[0]), None)

    def step(self, rater_id: int, position: int) -> PlanStep | None:
        with self.connect() as db:
            row = db.execute("SELECT image_id, repeat FROM plan WHERE rater_id=? AND position=?",
                             (rater_id, position)).fetchone()
        return PlanStep(position, int(row[0]), bool(row[1])) if row else None

    def image(self, image_id: int) -> StudyImage:
        return next(image for image in self.images() if image.id == image_id)

    def ratings(self) -> list[Rating]:
        with self.connect() as db:
            rows = db.execute("SELECT v.rater_id, v.position, v.image_id, v.value, p.repeat "
                              "FROM ratings v JOIN plan p ON p.rater_id=v.rater_id AND "
                              "p.position=v.position ORDER BY v.rater_id, v.position").fetchall()
        return [Rating(int(r), int(p), int(i), float(v), bool(rep)) for r, p, i, v, rep in rows]

    # --- writing ---------------------------------------------------------------------------
    def record(self, rater_id: int, position: int, value: float) -> int:
        """Store the rater's rating of step ``position`` and return how many steps they have
        done. Only their next step is accepted; sending the same rating again (a retry after
        a lost reply) is acknowledged without a second row."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                done = db.execute("SELECT COUNT(*) FROM ratings WHERE rater_id=?",
                                  (rater_id,)).fetchone()[0]
                if position < done:
                    stored = db.execute("SELECT value FROM ratings WHERE rater_id=? AND "
                                        "position=?", (rater_id, position)).fetchone()
                    if stored is not None and stored[0] == value:
                        db.execute("ROLLBACK")
                        return int(done)
                    raise RatingConflict(f"step {position} is already rated")
                if position != done:
                    raise RatingConflict(f"step {position} is not the next one ({done})")
                row = db.execute("SELECT image_id FROM plan WHERE rater_id=? AND position=?",
                                 (rater_id, position)).fetchone()
                if row is None:
                    raise RatingConflict("every image is already rated")
                db.execute("INSERT INTO ratings VALUES (?, ?, ?, ?, ?)",
                           (rater_id, position, row[0], value, time.time()))
                db.execute("COMMIT")
                return int(done) + 1
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
