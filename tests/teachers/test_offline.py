from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import spearmanr

from leafiqa.data import read_folder
from leafiqa.teachers.protocol import PairJob, PointJob

offline = pytest.importorskip("leafiqa.teachers.offline")
try:
    offline.find_brisque_files()
    HAVE_BRISQUE = True
except FileNotFoundError:
    HAVE_BRISQUE = False

pytestmark = pytest.mark.skipif(not HAVE_BRISQUE, reason="BRISQUE model files absent: "
                                "apt-get install opencv-data (the Makefile does this)")


def test_cue_teacher_ranks_blur_below_sharp(image_folder: Path) -> None:
    teacher = offline.CueTeacher()
    manifest = read_folder(image_folder)
    judgments = [teacher.judge_point(PointJob(item, item.name)) for item in manifest]
    assert all(len(j.probs) == 5 and abs(sum(j.probs) - 1) < 1e-9 for j in judgments)
    assert all(0.0 <= j.reliability <= 1.0 for j in judgments)
    blur = list(range(len(manifest)))
    assert spearmanr(blur, [j.score for j in judgments]).statistic < -0.8
    sharp, blurred = manifest[0], manifest[11]
    pair = teacher.judge_pair(PairJob(sharp, blurred, "a", "b"))
    assert pair.prob_a_better > 0.6  # two of three cues agree strongly; BRISQUE dislikes noise
    assert pair.p_first_ab == pytest.approx(1 - pair.p_first_ba)  # no position bias


def test_cue_teacher_reports_unreadable_image_as_failure(tmp_path: Path) -> None:
    from leafiqa.data.manifest import ImageItem

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    teacher = offline.CueTeacher()
    (result,) = list(teacher.judge_points([PointJob(ImageItem(bad, "bad.jpg"), "k")]))
    assert result.kind == "point" and "bad.jpg" in result.error
