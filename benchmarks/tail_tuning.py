"""Partial fine-tuning on AGIQA-3K: LEAF with the frozen backbone vs LEAF with its last N blocks
trained on the teacher's judgments (`student.unfreeze_blocks`), on one split.

    python benchmarks/tail_tuning.py [--blocks 1] [--input-size 224] [--split split_1]

The frozen front runs once in eager PyTorch (the slow part on 2 cores); each tuning epoch costs
only the unfrozen tail. Prints test SRCC / PLCC at 0 labels (rank only) and at 10 % labels.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from leafiqa.calibration.selection import select_labels
from leafiqa.config import load_config
from leafiqa.evaluation.metrics import evaluate
from leafiqa.pipeline import label_count, prepare, run_leaf, tune_backbone_tail

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--input-size", default="224", help="a size or sizes like 224+512")
    parser.add_argument("--split", default="split_1")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sizes = [int(s) for s in args.input_size.split("+")]
    config = load_config(args.config, {
        "student.input_size": sizes, "student.unfreeze_blocks": args.blocks,
        "student.tail_epochs": args.epochs, "data.split": args.split})
    ws = prepare(config, progress=False)
    mos = ws.mos[ws.test_rows]
    none = np.zeros(0, dtype=int)
    tenth = select_labels(ws.train_rows.size, label_count(0.1, ws.train_rows.size), seed=0)
    rows = []
    for labels, name in ((none, "0 labels"), (tenth, "10 % labels")):
        result = run_leaf(ws, labels, config.distill)
        rows.append(("frozen backbone", name, evaluate(result.predictions, mos, labels.size > 0)))
    start = time.time()
    tuned_ws, _, tuned_head = tune_backbone_tail(ws, progress=True)
    seconds = time.time() - start
    for labels, name in ((none, "0 labels"), (tenth, "10 % labels")):
        result = run_leaf(tuned_ws, labels, config.distill, distilled=tuned_head)
        rows.append((f"last {args.blocks} block(s) tuned", name,
                     evaluate(result.predictions, mos, labels.size > 0)))
    print(f"\nAGIQA-3K {args.split}, Lite0 at {args.input_size} px, teacher "
          f"{ws.teacher.name}; tuning took {seconds:.0f} s\n")
    print("| student | labels | SRCC | PLCC |\n|---|---|---|---|")
    for student, name, metrics in rows:
        plcc = f"{metrics['plcc']:.3f}" if name != "0 labels" else "—"
        print(f"| {student} | {name} | {metrics['srcc']:.3f} | {plcc} |")


if __name__ == "__main__":
    main()
