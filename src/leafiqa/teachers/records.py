"""Judgments as JSONL records, so judgments computed on one machine (a GPU box) can be distilled
on another. One object per line:

    {"kind": "point", "image_key": "…", "image_name": "a.jpg", "teacher_id": "…",
     "prompt_version": "v1", "levels": ["excellent", …], "probs": [0.1, …], "score": 0.62,
     "reliability": 0.4, "method": "logprobs"}
    {"kind": "pair", "key_a": "…", "key_b": "…", "teacher_id": "…", "prompt_version": "v1",
     "p_first_ab": 0.7, "p_first_ba": 0.35, "prob_a_better": 0.675, "reliability": 0.3,
     "source": "queried", "method": "logprobs"}

``image_key`` is the SHA-256 content hash prefix LEAF uses everywhere (``content_hash``).

The format belongs to the teachers' records (``protocol``): a recorded teacher replays such a
file, and the judgment store (a later stage) exports and imports it through here."""

from __future__ import annotations

import json
import math
from pathlib import Path

from leafiqa.data.manifest import DataError
from leafiqa.teachers.protocol import PairJudgment, PointJudgment

POINT_FIELDS = ("image_key", "teacher_id", "prompt_version", "levels", "probs", "score",
                "reliability", "method")
PAIR_FIELDS = ("key_a", "key_b", "teacher_id", "prompt_version", "p_first_ab", "p_first_ba",
               "prob_a_better", "reliability", "source", "method")


def point_record(judgment: PointJudgment, image_name: str = "") -> dict:
    record = {"kind": "point", **{f: getattr(judgment, f) for f in POINT_FIELDS}}
    record["levels"], record["probs"] = list(judgment.levels), list(judgment.probs)
    record["image_name"] = image_name
    return record


def pair_record(pair: PairJudgment) -> dict:
    return {"kind": "pair", **{f: getattr(pair, f) for f in PAIR_FIELDS}}


def _text(record: dict, name: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _probability(record: dict, name: str) -> float:
    """A number in [0, 1]: a string, a bool, NaN or a negative value is refused (SQLite would
    store any of them as is and distillation would train on it)."""
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r:.40}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def point_from_record(record: dict) -> PointJudgment:
    levels, probs = record["levels"], record["probs"]
    if not isinstance(levels, list) or not all(isinstance(level, str) for level in levels):
        raise ValueError("levels must be a list of strings")
    if not isinstance(probs, list) or len(probs) != len(levels) or len(levels) == 1:
        raise ValueError(f"probs must be a list of {len(levels)} numbers (one per level)")
    values = [_probability({"probs": p}, "probs") for p in probs]
    if values and abs(sum(values) - 1.0) > 1e-3:  # an ensemble's judgment has no levels
        raise ValueError(f"probs must add up to 1, got {sum(values):.6g}")
    return PointJudgment(
        image_key=_text(record, "image_key"), teacher_id=_text(record, "teacher_id"),
        prompt_version=_text(record, "prompt_version"), levels=tuple(levels),
        probs=tuple(values), score=_probability(record, "score"),
        reliability=_probability(record, "reliability"), method=_text(record, "method"),
        image_name=str(record.get("image_name") or ""))


def pair_from_record(record: dict) -> PairJudgment:
    if record["source"] not in {"queried", "derived"}:
        raise ValueError(f"source must be 'queried' or 'derived', got {record['source']!r:.40}")
    return PairJudgment(
        key_a=_text(record, "key_a"), key_b=_text(record, "key_b"),
        teacher_id=_text(record, "teacher_id"), prompt_version=_text(record, "prompt_version"),
        p_first_ab=_probability(record, "p_first_ab"),
        p_first_ba=_probability(record, "p_first_ba"),
        prob_a_better=_probability(record, "prob_a_better"),
        reliability=_probability(record, "reliability"), source=record["source"],
        method=_text(record, "method"))


def read_jsonl(path: str | Path) -> tuple[list[PointJudgment], list[PairJudgment]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    points: list[PointJudgment] = []
    pairs: list[PairJudgment] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
                        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError(f"a JSON object, got {type(record).__name__}")
            if record.get("kind") == "point":
                points.append(point_from_record(record))
            elif record.get("kind") == "pair":
                pairs.append(pair_from_record(record))
            else:
                raise KeyError("kind")
        except RecursionError:
            raise DataError(f"{path}: line {number}: JSON nested too deep") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: line {number}: bad judgment record ({error})") from None
    return points, pairs
