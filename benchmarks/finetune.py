"""Fine-tuning the student's backbone on the teacher's judgments (``student.finetune``): LEAF
with frozen features vs the last N blocks tuned (``tail``) vs every layer tuned (``full``), on
one split, at 0 and 10 % labels, with the wall time of the tuning.

    python benchmarks/finetune.py [--modes none,tail,full] [--input-size 224] [--split split_1]
                                  [--config configs/demo.yaml] [--epochs 4] [--blocks 1]

Runs on CUDA when there is a GPU, else on the CPU (slow: minutes per epoch on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from leafiqa.config import load_config
from leafiqa.evaluation.metrics import evaluate
from leafiqa.experiments.methods import run_leaf
from leafiqa.experiments.pipeline import tune_backbone
from leafiqa.experiments.workspace import label_count, prepare
from leafiqa.labelling.designs import select_labels
from leafiqa.student.tail_tuning import training_device

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--modes", default="none,tail,full")
    parser.add_argument("--blocks", type=int, default=1, help="blocks tuned by 'tail'")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--input-size", default="224", help="a size or sizes like 224+512")
    parser.add_argument("--split", default="split_1")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sizes = [int(s) for s in args.input_size.split("+")]
    rows = []
    for mode in args.modes.split(","):
        config = load_config(args.config, {
            "student.input_size": sizes, "student.finetune": mode,
            "student.unfreeze_blocks": args.blocks if mode == "tail" else 0,
            "student.tail_epochs": args.epochs, "data.split": args.split})
        ws = prepare(config, progress=False)
        mos = ws.mos[ws.test_rows]
        none = np.zeros(0, dtype=int)
        tenth = select_labels(ws.train_rows.size, label_count(0.1, ws.train_rows.size), seed=0)
        start = time.time()
        if mode != "none":
            ws, _ = tune_backbone(ws, progress=True)
        seconds = time.time() - start
        for labels, name in ((none, "0 labels"), (tenth, "10 % labels")):
            result = run_leaf(ws, labels, config.distill.seed)
            rows.append((mode, name, evaluate(result.predictions, mos, labels.size > 0),
                         seconds))
        print(f"{mode}: done in {seconds:.0f} s", flush=True)
    print(f"\n{Path(args.config).name} {args.split}, Lite0 at {args.input_size} px, on "
          f"{training_device()}\n")
    print("| finetune | labels | SRCC | PLCC | tuning time |\n|---|---|---|---|---|")
    for mode, name, metrics, seconds in rows:
        plcc = f"{metrics['plcc']:.3f}" if name != "0 labels" else "—"
        print(f"| {mode} | {name} | {metrics['srcc']:.3f} | {plcc} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
