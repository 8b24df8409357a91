"""Rank agreement of the distilled student with the teacher and with MOS on the training images
(which it was distilled on) and on the test images (which it never saw): the gap is why an
accuracy estimate from training labels can flatter on AGIQA-3K (docs/notes/select.md).

Run: PYTHONPATH=src python scripts/distill_gap.py"""

from __future__ import annotations

from scipy.stats import spearmanr

from leafiqa.config import load_config
from leafiqa.methods import distilled_head
from leafiqa.workspace import prepare

for path in ["configs/demo.yaml", "configs/clive.yaml"]:
    ws = prepare(load_config(path, {"output": "runs/try"}), progress=False)
    student = distilled_head(ws, ws.config.distill).predict(ws.features)
    teacher, mos = ws.teacher_scores, ws.mos
    parts = []
    for label, other in (("student~teacher", teacher), ("student~MOS", mos)):
        train = spearmanr(student[ws.train_rows], other[ws.train_rows]).statistic
        test = spearmanr(student[ws.test_rows], other[ws.test_rows]).statistic
        parts.append(f"{label} train {train:.3f} test {test:.3f}")
    print(path, " | ".join(parts), flush=True)
