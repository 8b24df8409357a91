"""Rank agreement of the distilled student with the teacher and with MOS on the training images
(which it was distilled on) — in sample, and out of sample (the ridge head's exact
leave-one-out: each training image scored without its own judgment) — and on the test images
(which it never saw): the in-sample gap is why an accuracy estimate from in-sample scores of
training labels flatters on AGIQA-3K (docs/notes/select.md).

Run: PYTHONPATH=src python scripts/distill_gap.py [CONFIG ...] [--splits split_1,split_2]"""

from __future__ import annotations

import sys

from scipy.stats import spearmanr

from leafiqa.config import load_config
from leafiqa.experiments.methods import distilled_head, unseen_scores
from leafiqa.experiments.workspace import prepare

args = sys.argv[1:]
splits = ["split_1"]
if "--splits" in args:
    at = args.index("--splits")
    splits = args[at + 1].split(",")
    args = args[:at] + args[at + 2:]
for path in args or ["configs/demo.yaml", "configs/clive.yaml"]:
    for split in splits:
        ws = prepare(load_config(path, {"output": "runs/try", "data.split": split}),
                     progress=False)
        head = distilled_head(ws, ws.config.distill)
        student = head.predict(ws.features)
        unseen = unseen_scores(head, student, ws)
        parts = []
        for label, other in (("student~teacher", ws.teacher_scores), ("student~MOS", ws.mos)):
            train = spearmanr(student[ws.train_rows], other[ws.train_rows]).statistic
            loo = spearmanr(unseen[ws.train_rows], other[ws.train_rows]).statistic
            test = spearmanr(student[ws.test_rows], other[ws.test_rows]).statistic
            parts.append(f"{label} train {train:.3f} train-unseen {loo:.3f} test {test:.3f}")
        print(path, split, " | ".join(parts), flush=True)
