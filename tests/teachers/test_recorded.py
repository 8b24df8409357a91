from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.data import DataError, read_agiqa3k
from leafiqa.data.manifest import ImageItem
from leafiqa.judgments.pairs import derive_pairs
from leafiqa.teachers.protocol import PointJob
from leafiqa.teachers.recorded import QBenchRecordedTeacher, read_qbench_logits
from tests.conftest import AGIQA, QBENCH, needs_agiqa


def write_qbench(path: Path, records: list[tuple[str, float, float]]) -> Path:
    path.write_text("".join(
        f'{{"img_path": "{n}", "gt_score": "1.0", "logit_good": {g}, "logit_poor": {p}}}'
        for n, g, p in records))
    return path


def test_concatenated_json_and_two_level_distribution(tmp_path: Path) -> None:
    path = write_qbench(tmp_path / "m.json", [("a.jpg", 2.0, 0.0), ("b.jpg", 0.0, 2.0),
                                               ("a.jpg", -5.0, 5.0)])
    teacher = QBenchRecordedTeacher(path)
    assert teacher.teacher_id == "qbench:m"
    assert len(teacher.records) == 2  # a repeated image keeps its first record
    a = teacher.judge_point(PointJob(ImageItem(tmp_path / "a.jpg", "a.jpg"), "ka"))
    assert a.levels == ("good", "poor") and len(a.probs) == 2
    assert a.score == pytest.approx(1 / (1 + np.exp(-2.0)))
    unknown = PointJob(ImageItem(tmp_path / "c.jpg", "c.jpg"), "kc")
    (missing,) = list(teacher.judge_points([unknown]))
    assert "no recorded judgment for c.jpg" in missing.error


def test_broken_record_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"img_path": "a.jpg", "logit_good": 1.0}')
    with pytest.raises(DataError, match=r"bad\.json: record 0"):
        read_qbench_logits(path)


@needs_agiqa
def test_all_15_recorded_teachers_cover_agiqa3k() -> None:
    files = sorted(QBENCH.glob("*.json"))
    assert len(files) == 15
    names = set(read_agiqa3k(AGIQA, split=None).names)
    for path in files:
        records = read_qbench_logits(path)
        assert len(records) == 2982, path.name
        assert set(records) == names, path.name


@needs_agiqa
def test_derived_pair_points_like_the_recorded_scores() -> None:
    teacher = QBenchRecordedTeacher(QBENCH / "internlm_xcomposer_vl.json")
    manifest = read_agiqa3k(AGIQA, split=None, check_files=False).head(200)
    points = {i.name: teacher.judge_point(PointJob(i, i.name)) for i in manifest}
    keys = list(points)
    pairs = derive_pairs(points, [(keys[i], keys[i + 1]) for i in range(0, 198, 2)])
    assert pairs and all(p.source == "derived" for p in pairs)
    for pair in pairs:
        a, b = points[pair.key_a].score, points[pair.key_b].score
        if a != b:
            assert (pair.prob_a_better > 0.5) == (a > b)
        else:
            assert pair.prob_a_better == pytest.approx(0.5) and pair.reliability == 0.0
