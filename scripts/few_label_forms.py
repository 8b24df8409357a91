"""Which correction form a few labels can be trusted with: for each split and label draw at one
budget (random draws 0–2 and the `variance` design), the correction calibration keeps when
every form is weighed (as before ``calibration.prior.MIN_LABELS_FOR_JOINT``), its
leave-one-out gain over the line in standard errors, and the test SRCC of the student's line
alone and with that correction, and the Spearman correlation between the student's ranking of
the pool sample and the corrected one (``calibration.prior.MIN_POOL_AGREEMENT``; the
calibration refuses a correction below it, which this script reports without applying). The
last lines count, per form, the corrections the gain rule kept that raised and that lowered the
test SRCC, and which of them the pool rule refuses.

Run: PYTHONPATH=src python scripts/few_label_forms.py CONFIG BUDGET [--splits split_1,split_2]
(e.g. configs/clive.yaml 0.05 — 22 labels — and configs/demo.yaml 0.01 — 24 labels)."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
from scipy.stats import spearmanr

from leafiqa.calibration import prior
from leafiqa.config import load_config
from leafiqa.data.splits import labelled_rows
from leafiqa.experiments.bench import train_embedding
from leafiqa.experiments.methods import distilled_head
from leafiqa.experiments.workspace import label_count, prepare
from leafiqa.labelling.designs import select_among_labelled

args = sys.argv[1:]
splits = ["split_1", "split_2", "split_3", "split_4", "split_5"]
if "--splits" in args:
    at = args.index("--splits")
    splits = args[at + 1].split(",")
    args = args[:at] + args[at + 2:]
path, budget = args[0], float(args[1])
prior.MIN_LABELS_FOR_JOINT = 0  # weigh every form, as before the rule
refused: list[str] = []
seen: dict[str, np.ndarray] = {}
judged = prior.gain_is_clear


def spy(mos: np.ndarray, corrected: np.ndarray, line: np.ndarray, min_gain_se: float) -> bool:
    seen.update(mos=mos, corrected=corrected, line=line)
    return judged(mos, corrected, line, min_gain_se)


prior.gain_is_clear = spy
outcomes: Counter[tuple[str, str]] = Counter()
for split in splits:
    ws = prepare(load_config(path, {"output": "runs/try", "data.split": split}), progress=False)
    scores = distilled_head(ws, ws.config.distill).predict(ws.features)
    line_srcc = spearmanr(scores[ws.test_rows], ws.mos[ws.test_rows]).statistic
    train_mos = ws.mos[ws.train_rows]
    n = label_count(budget, labelled_rows(train_mos).size)
    for selection, seed in [("random", 0), ("random", 1), ("random", 2), ("variance", 0)]:
        rows = select_among_labelled(train_mos, n, strategy=selection, seed=seed,
                                     teacher_scores=ws.teacher_scores[ws.train_rows],
                                     embedding=train_embedding(ws))
        labelled = ws.train_rows[rows]
        seen.clear()
        calibration = prior.calibrate_prior(scores[labelled], ws.bases(rows), ws.mos[labelled],
                                            forms=ws.config.calibration.forms,
                                            min_gain_se=ws.config.calibration.min_gain_se)
        z = float("nan")
        if seen:
            gain = (seen["mos"] - seen["line"]) ** 2 - (seen["mos"] - seen["corrected"]) ** 2
            z = float(gain.mean() / (gain.std(ddof=1) / np.sqrt(gain.size)))
        srcc = spearmanr(calibration(scores[ws.test_rows], ws.features[ws.test_rows]),
                         ws.mos[ws.test_rows]).statistic
        form = calibration.form if calibration.correction is not None else "line only"
        agreement = ""
        if calibration.correction is not None:
            outcome = "raised" if srcc > line_srcc else "lowered"
            outcomes[(form, outcome)] += 1
            pool = ws.pool_sample(scores)
            kept = spearmanr(pool.scores, calibration(pool.scores, pool.features)).statistic
            agreement = f", pool agreement {kept:.3f}"
            if kept < prior.MIN_POOL_AGREEMENT:
                refused.append(f"{split} {selection}/{seed} ({form}, {srcc - line_srcc:+.3f})")
        candidate = f"best candidate's gain {z:+.2f} SE" if seen else "no candidate beat the line"
        print(f"{path} {split} {selection}/{seed} {n} labels: {candidate}, kept {form}"
              f"{agreement}: test SRCC {line_srcc:.3f} → {srcc:.3f}", flush=True)
for form in ("two-stage", "joint"):
    print(f"{form}: kept {outcomes[(form, 'raised')] + outcomes[(form, 'lowered')]} times, "
          f"raised the test SRCC {outcomes[(form, 'raised')]}, lowered it "
          f"{outcomes[(form, 'lowered')]}")
print(f"refused by the pool rule (agreement < {prior.MIN_POOL_AGREEMENT}): "
      + ("; ".join(refused) or "none"))
