"""``leaf judgments import`` and recorded-judgment files (issue 20, item 7): a record with a
NaN, negative or string probability or score is refused with the line that holds it (it was
stored as valid), and JSON nested 200,000 deep is one error, not a RecursionError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.errors import DataError
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.recorded import QBenchRecordedTeacher
from leafiqa.teachers.records import read_jsonl

POINT = {"kind": "point", "image_key": "k1", "image_name": "a.jpg", "teacher_id": "t",
         "prompt_version": "v1", "levels": ["good", "poor"], "probs": [0.7, 0.3],
         "score": 0.7, "reliability": 0.4, "method": "logprobs"}
PAIR = {"kind": "pair", "key_a": "k1", "key_b": "k2", "teacher_id": "t", "prompt_version": "v1",
        "p_first_ab": 0.7, "p_first_ba": 0.35, "prob_a_better": 0.675, "reliability": 0.3,
        "source": "queried", "method": "logprobs"}
DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(("record", "field"), [
    ({**POINT, "probs": [float("nan"), 0.3]}, "probs"),
    ({**POINT, "probs": [1.3, -0.3]}, "probs"),
    ({**POINT, "probs": ["0.7", "0.3"]}, "probs"),
    ({**POINT, "probs": [0.7, 0.2]}, "add up to 1"),
    ({**POINT, "probs": [0.7, 0.2, 0.1]}, "one per level"),
    ({**POINT, "score": "0.7"}, "score"),
    ({**POINT, "score": float("nan")}, "score"),
    ({**POINT, "score": True}, "score"),
    ({**POINT, "reliability": -1}, "reliability"),
    ({**POINT, "image_key": 12}, "image_key"),
    ({**PAIR, "prob_a_better": float("inf")}, "prob_a_better"),
    ({**PAIR, "p_first_ab": "high"}, "p_first_ab"),
    ({**PAIR, "source": "guessed"}, "source"),
])
def test_import_refuses_invalid_numbers(tmp_path: Path, record: dict, field: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(POINT) + "\n" + json.dumps(record) + "\n")
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["judgments", "import", str(source), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert "in.jsonl: line 2: bad judgment record" in result.output and field in result.output
    assert result.output.count("\n") == 1
    if store.exists():  # nothing half-imported
        with JudgmentStore(store) as opened:
            assert opened.count("point_judgments") == 0


def test_valid_records_still_import(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(POINT) + "\n" + json.dumps(PAIR) + "\n"
                      + json.dumps({**POINT, "image_key": "k3", "levels": [], "probs": [],
                                    "method": "ensemble"}) + "\n")
    points, pairs = read_jsonl(source)
    assert len(points) == 2 and len(pairs) == 1


def test_jsonl_nested_too_deep_is_one_error(tmp_path: Path) -> None:
    source = tmp_path / "deep.jsonl"
    source.write_text(json.dumps(POINT) + "\n" + DEEP + "\n")
    with pytest.raises(DataError, match=r"deep\.jsonl: line 2: JSON nested too deep"):
        read_jsonl(source)


def test_qbench_file_nested_too_deep_is_one_error(tmp_path: Path) -> None:
    source = tmp_path / "deep.json"
    source.write_text('{"img_path": "a.jpg", "logit_good": 1, "logit_poor": 0}' + DEEP)
    with pytest.raises(DataError, match=r"deep\.json: JSON nested too deep"):
        QBenchRecordedTeacher(source)
