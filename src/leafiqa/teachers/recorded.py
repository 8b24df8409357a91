"""Recorded teachers: judgments an MLLM gave elsewhere, replayed from files.

- Q-Bench's published IQA outputs (``{"img_path", "gt_score", "logit_good", "logit_poor"}``
  concatenated JSON objects): a two-level (good, poor) distribution, P(good) =
  softmax(logit_good, logit_poor). ``gt_score`` (the MOS) is ignored: a teacher never sees MOS.
- LEAF's own JSONL judgment export (``leafiqa.teachers.records``), for judgments computed on
  another machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from leafiqa.data.manifest import DataError, ImageItem
from leafiqa.teachers.protocol import TWO_LEVELS, Teacher, TeacherError
from leafiqa.teachers.records import read_jsonl


def iter_concatenated_json(path: Path) -> Iterator[dict]:
    """Objects of a file holding JSON values back to back (not an array, not one per line)."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: invalid JSON at character {position} ({error.msg})") from None
        except RecursionError:
            raise DataError(f"{path}: JSON nested too deep at character {position}") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}: expected JSON objects, found {type(value).__name__}")
        yield value


def read_qbench_logits(path: str | Path) -> dict[str, tuple[float, float]]:
    """image file name → (logit_good, logit_poor); a repeated image keeps its first record."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: recorded judgment file not found")
    records: dict[str, tuple[float, float]] = {}
    for index, record in enumerate(iter_concatenated_json(path)):
        try:
            name = Path(str(record["img_path"])).name
            good, poor = float(record["logit_good"]), float(record["logit_poor"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: record {index}: missing or bad field ({error})") from None
        if not (math.isfinite(good) and math.isfinite(poor)):
            raise DataError(f"{path}: record {index} ({name}): non-finite logits")
        records.setdefault(name, (good, poor))
    return records


def two_level_probs(logit_good: float, logit_poor: float) -> tuple[float, float]:
    difference = logit_good - logit_poor
    p_good = 1.0 / (1.0 + math.exp(-difference)) if difference > -700 else 0.0
    return p_good, 1.0 - p_good


class QBenchRecordedTeacher(Teacher):
    """Replays a Q-Bench judgment file; the teacher id is ``qbench:<model>``."""

    levels = TWO_LEVELS
    prompt_version = "qbench-good-poor"
    supports_pairs = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records = read_qbench_logits(self.path)
        self.model_name = self.path.stem
        self.teacher_id = f"qbench:{self.model_name}"

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        record = self.records.get(Path(item.name).name)
        if record is None:
            raise TeacherError(f"no recorded judgment for {item.name} in {self.path}")
        return two_level_probs(*record), "recorded"


class JsonlRecordedTeacher(Teacher):
    """Replays point-wise judgments from a LEAF JSONL export, matched by image content hash
    (or by file name when the export has names). Carries the original distribution as is."""

    supports_pairs = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        points, _ = read_jsonl(self.path)
        if not points:
            raise DataError(f"{self.path}: no point-wise judgments")
        teachers = sorted({p.teacher_id for p in points})
        if len(teachers) != 1:
            raise DataError(f"{self.path}: holds several teachers {teachers}; split the file")
        self.teacher_id = teachers[0]
        self.prompt_version = points[0].prompt_version
        self.levels = points[0].levels
        self.by_key = {p.image_key: p for p in points}
        self.by_name = {Path(p.image_name).name: p for p in points if p.image_name}

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        from leafiqa.data.images import content_hash

        judgment = self.by_name.get(Path(item.name).name)
        if judgment is None:
            judgment = self.by_key.get(content_hash(item.path))
        if judgment is None:
            raise TeacherError(f"no recorded judgment for {item.name} in {self.path}")
        return judgment.probs, judgment.method
