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
                points.append(PointJudgment(
                    **{f: record[f] for f in POINT_FIELDS if f not in ("levels", "probs")},
                    levels=tuple(record["levels"]), probs=tuple(record["probs"]),
                    image_name=record.get("image_name", "")))
            elif record.get("kind") == "pair":
                pairs.append(PairJudgment(**{f: record[f] for f in PAIR_FIELDS}))
            else:
                raise KeyError("kind")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: line {number}: bad judgment record ({error})") from None
    return points, pairs
