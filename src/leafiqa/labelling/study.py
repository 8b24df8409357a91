"""A rating study: the images people rate, its settings, and a SQLite store of raters, their
planned order and every rating.

Every write is one short transaction on its own connection (WAL, ``synchronous=FULL``), so a
rating that was acknowledged is on disk even if the server is killed the next instant, and two
raters writing at once only wait a few milliseconds for each other (``busy_timeout``).

A study serves its images and nothing else: at creation every entry must resolve (links
followed) to a regular file inside the folder or list it came from (or a folder the owner
names), decode as an image of an accepted format, and one content is one image; its SHA-256 is
recorded, and each showing opens the file without following a link and checks that hash.

A damaged, locked, read-only or foreign ``study.sqlite`` is one ``DataError`` naming it (as the
judgment store does); a study in a folder LEAF cannot write is opened read-only for the commands
that only read."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import os
import secrets
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from leafiqa.data.images import ImageDecodeError, decode_bytes_rgb
from leafiqa.data.manifest import first_few, printable
from leafiqa.data.readers import IMAGE_SUFFIXES, walk_images
from leafiqa.errors import DataError, quoted

STUDY_FILE = "study.sqlite"
# PRAGMA application_id of a study ("LEAR"): another program's SQLite file is recognised
APPLICATION_ID = 0x4C454152
STUDY_TABLES = {"meta", "images", "raters", "plan", "ratings"}
MAX_RATERS_AT_ONCE = 1000  # links one command makes
T = TypeVar("T")
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
    sha256: str | None = None  # of the file's bytes at creation (None: a study of LEAF < 0.x)
    size: int | None = None


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


@dataclass(frozen=True)
class ImageFile:
    """A study entry that passed the checks: its name, resolved path, size and SHA-256."""

    name: str
    path: Path
    sha256: str
    size: int


class ImageGone(Exception):
    """A study image that is no longer the regular file recorded at creation."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _outside_error(source: Path, outside: list[str], roots: Sequence[Path]) -> DataError:
    shown = first_few([printable(entry) for entry in outside])
    where = " or ".join(printable(root) for root in roots)
    entries = "entry" if len(outside) == 1 else "entries"
    return DataError(f"{printable(source)}: {len(outside)} {entries} outside {where} (a path "
                     f"or link leading out): {shown}; a study serves only files inside the "
                     "folder or list it was made from; name another folder its images may come "
                     "from with --allow-root DIR")


def read_image_list(source: Path, root: Path | None = None,
                    allowed_roots: Sequence[Path] = ()) -> list[tuple[str, Path]]:
    """``(name, resolved path)`` for a folder's images or the rows of a ``leaf select`` output: a
    CSV with a ``name``, ``path`` or ``image`` column, or JSON (a list of such records or of
    names, or ``{"images": [...]}``). With both ``name`` and ``path`` (``leaf select`` writes
    ``order,name,path``) the name is kept for the labels and the path finds the file; relative
    paths are under ``root``, by default the list's folder. Every file, links followed, must be
    inside the folder (or ``root``, or one of ``allowed_roots``): a name such as
    ``../truth.csv`` or ``/etc/passwd``, or a link leading out, is refused. Missing or outside
    files: one error naming them."""
    if source.is_dir():
        paths, _ = walk_images(source)
        if not paths:
            raise DataError(f"{source}: no image files found")
        roots = [source.resolve(), *(Path(r).resolve() for r in allowed_roots)]
        listed = [(printable(p.relative_to(source).as_posix()), p.resolve()) for p in paths]
        leading_out = [name for name, path in listed if not _inside(path, roots)]
        if leading_out:
            raise _outside_error(source, leading_out, roots)
        return listed
    if not source.is_file():
        raise DataError(f"{source}: no such file or folder")
    entries = _entries_from_file(source)
    base = root or source.parent
    roots = [base.resolve(), *(Path(r).resolve() for r in allowed_roots)]
    found: list[tuple[str, Path]] = []
    missing: list[str] = []
    outside: list[str] = []
    for name, where in entries:
        # a relative path is tried under the list's folder, then the working folder (`leaf
        # select` writes paths as the data set was given on its command line), then the name
        candidates = [Path(where)] if Path(where).is_absolute() else [
            base / where, Path.cwd() / where, base / name]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(where)
        elif not _inside(path.resolve(), roots):
            outside.append(where)
        else:
            found.append((name, path.resolve()))
    if missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)"
                                           if len(missing) > 10 else "")
        raise DataError(f"{source}: {len(missing)} image(s) not found under {base}: {shown}")
    if outside:
        raise _outside_error(source, outside, roots)
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


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` opened without following a link (``O_NOFOLLOW``) and without
    waiting on a pipe (``O_NONBLOCK``); an ``OSError`` unless it is a regular file (of at most
    ``limit`` bytes)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
        getattr(os, "O_BINARY", 0)
    if not hasattr(os, "O_NOFOLLOW") and Path(path).is_symlink():  # Windows
        raise OSError(f"{path}: a link")
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path}: not a regular file")
        if limit is not None and info.st_size > limit:
            raise OSError(f"{path}: {info.st_size} bytes, not the {limit} recorded")
        return handle.read() if limit is None else handle.read(limit + 1)


def inspect_images(entries: Sequence[tuple[str, Path]]) -> tuple[list[ImageFile],
                                                                  list[list[str]]]:
    """Each entry read as a regular file (no link followed) and decoded as an image of an
    accepted format (``data.images``: the allowlist and decompression-bomb limit scoring uses),
    and entries with the same bytes merged into the first one's name. Returns the images and
    the names merged (each group's kept name first). Any entry that is not an image: one error
    naming them all."""
    images: list[ImageFile] = []
    by_hash: dict[str, list[str]] = {}
    refused: list[str] = []
    for name, path in entries:
        try:
            data = read_regular_file(Path(path))
            decode_bytes_rgb(data, printable(name))
        except ImageDecodeError as error:
            refused.append(str(error))
            continue
        except OSError as error:
            refused.append(f"{printable(name)}: {error.strerror or error}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest not in by_hash:
            images.append(ImageFile(name, Path(path), digest, len(data)))
        by_hash.setdefault(digest, []).append(name)
    if refused:
        raise DataError(f"{len(refused)} of {len(entries)} entries are not images a study can "
                        f"serve: {first_few(refused, '; ')}")
    return images, [names for names in by_hash.values() if len(names) > 1]


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
    path TEXT NOT NULL, gold REAL, sha256 TEXT, size INTEGER);
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


class _ForeignFile(sqlite3.DatabaseError):
    """A SQLite file that belongs to another program."""


def _folder_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried: permission bits say nothing for
    root, a read-only mount or an immutable folder)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _sql(method: Callable[..., T]) -> Callable[..., T]:
    """SQLite errors of a study operation as one ``DataError`` naming the study file and what
    to do (a locked file, a read-only folder, damage found deep in the file)."""
    @functools.wraps(method)
    def guarded(self: Study, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise self._error(error) from None
    return guarded


def _settings(text: str, where: str) -> StudySettings:
    try:
        stored = json.loads(text)
        # a study made before screening's rules moved out of its settings holds their keys
        known = {setting.name for setting in fields(StudySettings)}
        return StudySettings(**{k: v for k, v in stored.items() if k in known})
    except (ValueError, TypeError, AttributeError) as error:
        raise DataError(f"{where}: the study's settings are damaged ({error})") from None


class Study:
    """A study folder holding ``study.sqlite``. ``timeout``: how long to wait for a study
    locked by another program; ``keep_connections``: each thread keeps its connection open
    (``leaf rate serve``). A study in a folder LEAF cannot write is opened read-only
    (``read_only``): reading works, a write is one error saying so."""

    def __init__(self, folder: str | Path, *, timeout: float = 30.0,
                 keep_connections: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STUDY_FILE
        self.timeout = timeout
        self.keep_connections = keep_connections
        self._local = threading.local()
        if not self.path.is_file():
            raise DataError(f"{quoted(self.folder)}: not a study folder (no {STUDY_FILE}; make "
                            "one with `leaf rate create`)")
        self.read_only = not _folder_writable(self.folder) or not os.access(self.path,
                                                                             os.W_OK)
        try:
            with self.connect() as db:
                self._check_foreign(db)
                if not self.read_only:
                    self._upgrade(db)
                row = db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        except sqlite3.Error as error:
            raise self._error(error, opening=True) from None
        if row is None:
            raise DataError(f"{quoted(self.path)}: the study has no settings (damaged; restore "
                            "it from a backup)")
        self.settings = _settings(row[0], quoted(self.path))

    def _uri(self) -> str:
        """How to open the file: as is, or read-only when the folder cannot be written (with
        ``immutable`` when no journal is left to read, as SQLite then needs to write none)."""
        if not self.read_only:
            return str(self.path)
        wal = self.path.with_name(STUDY_FILE + "-wal")
        mode = "mode=ro" if wal.exists() else "immutable=1"
        return f"{self.path.resolve().as_uri()}?{mode}"

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation: a new one each time, or with ``keep_connections``
        this thread's own, kept open (a server's worker threads skip opening the file and
        reading its schema on every request)."""
        kept = getattr(self._local, "db", None) if self.keep_connections else None
        db = kept or self._open()
        try:
            yield db
        finally:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if self.keep_connections:
                self._local.db = db
            else:
                db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._uri(), timeout=self.timeout, isolation_level=None,
                             uri=self.read_only)
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            if not self.read_only:
                db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        return db

    def _check_foreign(self, db: sqlite3.Connection) -> None:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if application_id not in (0, APPLICATION_ID):
            raise _ForeignFile(f"a SQLite file of another program (application id "
                               f"{application_id:#x})")
        if not tables:
            raise sqlite3.DatabaseError("an empty SQLite file: no study tables")
        if not tables >= STUDY_TABLES:
            shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
            raise _ForeignFile(f"a SQLite file of another program (tables: {shown})")

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """A study of an earlier LEAF gets the columns for its images' hashes (recorded when
        each is first shown, see ``image_bytes``)."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(images)")}
        for column, kind in (("sha256", "TEXT"), ("size", "INTEGER")):
            if column not in columns:
                db.execute(f"ALTER TABLE images ADD COLUMN {column} {kind}")

    def _error(self, error: sqlite3.Error, opening: bool = False) -> DataError:
        """What a SQLite error means for the user, as one line naming the study file."""
        name = quoted(self.path)
        text = str(error)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return DataError(f"{name}: the study is locked by another program (waited "
                             f"{self.timeout:g} s); close the program holding it (a sqlite3 "
                             "shell, a viewer) or wait for it, then rerun")
        if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered \
                or "disk i/o" in lowered:
            if self.read_only or not _folder_writable(self.folder):
                return DataError(f"{name}: cannot write the study or its journal files in "
                                 f"{quoted(self.folder)} ({text}); the study itself is not "
                                 "damaged: make the folder and the file writable")
            return DataError(f"{name}: cannot open the study ({text})")
        if isinstance(error, _ForeignFile):
            return DataError(f"{name}: {text}; not a LEAF study (LEAF leaves it as it is)")
        what = "not a readable LEAF study" if opening else "the study file is damaged"
        return DataError(f"{name}: {what} ({text}); restore it from a backup")

    @_sql
    def require_writable(self) -> None:
        """An error now, rather than at the first rating, when the study cannot be written
        (``leaf rate serve``)."""
        if self.read_only:
            raise self._error(sqlite3.OperationalError("attempt to write a readonly database"))
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")

    @classmethod
    def create(cls, folder: str | Path, images: Sequence[tuple[str, Path]],
               settings: StudySettings, gold_images: Sequence[tuple[str, Path]] = ()) -> Study:
        """A new study of ``images`` (``read_image_list``'s entries) and hidden gold images.
        Every entry is checked (``inspect_images``); files with the same bytes become one image
        (``merged()`` names them); ``repeats`` is capped at the images there are."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{quoted(folder)}: is a file, not a folder for a new study")
        if (folder / STUDY_FILE).exists() or (folder / STUDY_FILE).is_symlink():
            raise DataError(f"{quoted(folder)}: already holds a study ({STUDY_FILE})")
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
        study_files, merged = inspect_images(images)
        gold_files, gold_merged = inspect_images(gold_images)
        same = {f.sha256: f.name for f in study_files}
        both = [f"'{gold.name}' = '{same[gold.sha256]}'" for gold in gold_files
                if gold.sha256 in same]
        if both:
            raise DataError(f"gold images with the same content as a study image: "
                            f"{first_few(both)}")
        differing = [group for group in gold_merged
                     if len({settings.gold[name] for name in group}) > 1]
        if differing:
            raise DataError("gold images with the same content but different answers: "
                            + first_few([" = ".join(group) for group in differing], "; "))
        kept_gold = {f.name: settings.gold[f.name] for f in gold_files}
        settings = dataclasses.replace(settings, gold=kept_gold, repeats=min(
            settings.repeats, len(study_files) + len(gold_files)))
        created_folder = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            cls._write_new(folder / STUDY_FILE, settings, study_files, gold_files,
                           merged + gold_merged)
        except (OSError, sqlite3.Error) as error:
            for leftover in (STUDY_FILE, STUDY_FILE + "-wal", STUDY_FILE + "-shm"):
                with contextlib.suppress(OSError):
                    (folder / leftover).unlink()
            if created_folder:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            reason = getattr(error, "strerror", None) or str(error)
            raise DataError(f"{quoted(folder)}: cannot write a study there ({reason})") from None
        return cls(folder)

    @staticmethod
    def _write_new(path: Path, settings: StudySettings, images: Sequence[ImageFile],
                   gold: Sequence[ImageFile], merged: list[list[str]]) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("BEGIN")
            db.execute("INSERT INTO meta VALUES ('settings', ?)", (json.dumps(asdict(settings)),))
            db.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            db.execute("INSERT INTO meta VALUES ('merged', ?)", (json.dumps(merged),))
            db.executemany("INSERT INTO images (name, path, gold, sha256, size) VALUES "
                           "(?, ?, ?, ?, ?)",
                           [(f.name, str(f.path), None, f.sha256, f.size) for f in images]
                           + [(f.name, str(f.path), settings.gold[f.name], f.sha256, f.size)
                              for f in gold])
            db.execute("COMMIT")
        finally:
            db.close()

    @_sql
    def merged(self) -> list[list[str]]:
        """Names given to one content at creation, the name kept first."""
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key='merged'").fetchone()
        return json.loads(row[0]) if row else []

    # --- admin -------------------------------------------------------------------------
    @_sql
    def set_admin_key(self) -> str:
        key = secrets.token_urlsafe(TOKEN_BYTES)
        with self.connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('admin_key', ?)", (token_hash(key),))
        return key

    @_sql
    def admin_key_matches(self, key: str) -> bool:
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key='admin_key'").fetchone()
        return row is not None and secrets.compare_digest(row[0], token_hash(key))

    @_sql
    def add_raters(self, count: int, prefix: str = "rater") -> list[tuple[Rater, str]]:
        """``count`` new raters (1 to ``MAX_RATERS_AT_ONCE``), each with their own random
        order and a fresh token (returned once; only its hash is stored). Gold images are among
        the images a rater may see twice, so a repeat does not give away that an image is not
        gold."""
        if isinstance(count, bool) or not isinstance(count, int) or \
                not 1 <= count <= MAX_RATERS_AT_ONCE:
            raise DataError(f"--count: expected 1 to {MAX_RATERS_AT_ONCE} raters, got {count}")
        all_ids = [image.id for image in self.images()]
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
                steps = plan_order(all_ids, all_ids, self.settings.repeats, rng,
                                   self.settings.min_repeat_gap)
                db.executemany("INSERT INTO plan VALUES (?, ?, ?, ?)",
                               [(rater_id, s.position, s.image_id, int(s.repeat)) for s in steps])
                made.append((rater_id, label, token))
            db.execute("COMMIT")
        raters = {rater.id: rater for rater in self.raters()}
        return [(raters[rater_id], token) for rater_id, _, token in made]

    @_sql
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
    _IMAGE_COLUMNS = "id, name, path, gold, sha256, size"

    @staticmethod
    def _image(row: tuple) -> StudyImage:
        i, n, p, g, h, s = row
        return StudyImage(int(i), str(n), Path(p), g, h, None if s is None else int(s))

    @_sql
    def images(self) -> list[StudyImage]:
        with self.connect() as db:
            rows = db.execute(f"SELECT {self._IMAGE_COLUMNS} FROM images ORDER BY id").fetchall()
        return [self._image(row) for row in rows]

    _RATER_QUERY = ("SELECT r.id, r.label, r.revoked, "
                    "(SELECT COUNT(*) FROM plan p WHERE p.rater_id=r.id), "
                    "(SELECT COUNT(*) FROM ratings v WHERE v.rater_id=r.id) FROM raters r")

    @_sql
    def raters(self) -> list[Rater]:
        with self.connect() as db:
            rows = db.execute(self._RATER_QUERY + " ORDER BY r.id").fetchall()
        return [Rater(int(i), str(label), bool(rev), int(total), int(done))
                for i, label, rev, total, done in rows]

    @_sql
    def rater_for_token(self, token: str) -> Rater | None:
        """The rater holding ``token``, or None (unknown or revoked)."""
        with self.connect() as db:
            row = db.execute(self._RATER_QUERY + " WHERE r.token_hash=? AND r.revoked=0",
                             (token_hash(token),)).fetchone()
        if row is None:
            return None
        i, label, revoked, total, done = row
        return Rater(int(i), str(label), bool(revoked), int(total), int(done))

    @_sql
    def step(self, rater_id: int, position: int) -> PlanStep | None:
        with self.connect() as db:
            row = db.execute("SELECT image_id, repeat FROM plan WHERE rater_id=? AND position=?",
                             (rater_id, position)).fetchone()
        return PlanStep(position, int(row[0]), bool(row[1])) if row else None

    @_sql
    def image(self, image_id: int) -> StudyImage:
        with self.connect() as db:
            row = db.execute(f"SELECT {self._IMAGE_COLUMNS} FROM images WHERE id=?",
                             (image_id,)).fetchone()
        if row is None:
            raise DataError(f"{quoted(self.path)}: no image {image_id}")
        return self._image(row)

    def image_bytes(self, image: StudyImage) -> bytes:
        """The image's bytes, read without following a link and checked against the SHA-256
        recorded at creation; ``ImageGone`` (with the reason) for anything else: a file
        removed, replaced by a link or another file, or changed. An image of a study made
        before hashes were recorded is checked as ``create`` checks it and its hash recorded
        now."""
        try:
            data = read_regular_file(image.path, image.size)
        except OSError as error:
            raise ImageGone(error.strerror or str(error)) from None
        if os.path.realpath(image.path) != str(image.path):
            raise ImageGone("reached through a link")
        digest = hashlib.sha256(data).hexdigest()
        if image.sha256 is None:
            try:
                decode_bytes_rgb(data, image.name)
            except ImageDecodeError as error:
                raise ImageGone(str(error)) from None
            self._record_hash(image.id, digest, len(data))
        elif not secrets.compare_digest(digest, image.sha256):
            raise ImageGone("its content is not the one recorded at creation")
        return data

    @_sql
    def _record_hash(self, image_id: int, digest: str, size: int) -> None:
        if self.read_only:
            return
        with self.connect() as db:
            db.execute("UPDATE images SET sha256=?, size=? WHERE id=? AND sha256 IS NULL",
                       (digest, size, image_id))

    @_sql
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
        (done,) = self.record_many([(rater_id, position, value)])
        if isinstance(done, RatingConflict):
            raise done
        return done

    @_sql
    def record_many(self, ratings: Sequence[tuple[int, int, float]]
                    ) -> list[int | RatingConflict]:
        """``record`` for several ratings ``(rater id, step, value)`` in one transaction: one
        flush to disk for all (the server writes the ratings that arrive while a commit is on
        its way together, see ``labelling.service.RatingWriter``). Per rating, the steps
        done or the conflict; the others are stored whatever one's conflict."""
        results: list[int | RatingConflict] = []
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for rater_id, position, value in ratings:
                results.append(self._record_one(db, rater_id, position, value))
            db.execute("COMMIT")
        return results

    @staticmethod
    def _record_one(db: sqlite3.Connection, rater_id: int, position: int,
                    value: float) -> int | RatingConflict:
        done = db.execute("SELECT COUNT(*) FROM ratings WHERE rater_id=?",
                          (rater_id,)).fetchone()[0]
        if position < done:
            stored = db.execute("SELECT value FROM ratings WHERE rater_id=? AND position=?",
                                (rater_id, position)).fetchone()
            if stored is not None and stored[0] == value:
                return int(done)
            return RatingConflict(f"step {position} is already rated")
        if position != done:
            return RatingConflict(f"step {position} is not the next one ({done})")
        row = db.execute("SELECT image_id FROM plan WHERE rater_id=? AND position=?",
                         (rater_id, position)).fetchone()
        if row is None:
            return RatingConflict("every image is already rated")
        db.execute("INSERT INTO ratings VALUES (?, ?, ?, ?, ?)",
                   (rater_id, position, row[0], value, time.time()))
        return int(done) + 1
