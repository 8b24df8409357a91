"""Student variants on AGIQA-3K: accuracy with 100 % of the training MOS and with LEAF at 10 %,
parameter count, input size and `leaf score` speed on this machine, over split_1 … split_5.

    python benchmarks/student_variants.py [--variants efficientnet-lite0:224,efficientnet-lite0:384]

Features are cached in runs/cache (first run of a new variant extracts them: minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from leafiqa.calibration.selection import select_labels
from leafiqa.config import load_config
from leafiqa.evaluation.metrics import evaluate
from leafiqa.pipeline import (
    label_count,
    prepare,
    run_labels_only,
    run_leaf,
    run_linear_probe,
    save_student,
)

REPO = Path(__file__).resolve().parents[1]


def scoring_speed(model: Path, paths: list[Path]) -> float:
    from leafiqa.deploy.scorer import Scorer

    scorer = Scorer(model, runtime="auto")
    scorer.score_paths(paths[:8])
    start = time.perf_counter()
    scorer.score_paths(paths)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="efficientnet-lite0:224,efficientnet-lite0:384")
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--speed-images", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'variant':<26} {'params':>7} {'img/s':>6} | 100% labels: {'MLP SRCC':>8} "
          f"{'PLCC':>6} {'ridge SRCC':>10} {'PLCC':>6} | LEAF 10%: {'SRCC':>6} {'PLCC':>6}")
    for variant in args.variants.split(","):
        backbone, size = variant.split(":")
        config = load_config(args.config, {"student.backbone": backbone,
                                           "student.input_size": int(size)})
        results: dict[str, list[tuple[float, float]]] = {"mlp": [], "ridge": [], "leaf": []}
        speed, params = float("nan"), 0
        for index in range(1, args.splits + 1):
            config.data.split = f"split_{index}"
            ws = prepare(config, progress=False)
            everything = np.arange(ws.train_rows.size)
            tenth = select_labels(ws.train_rows.size, label_count(0.1, ws.train_rows.size),
                                  seed=0)
            mos = ws.mos[ws.test_rows]
            for name, result in (("mlp", run_labels_only(ws, everything)),
                                 ("ridge", run_linear_probe(ws, everything)),
                                 ("leaf", run_leaf(ws, tenth, dataclasses.replace(
                                     config.distill)))):
                metrics = evaluate(result.predictions, mos)
                results[name].append((metrics["srcc"], metrics["plcc"]))
                if index == 1 and name == "leaf":
                    with tempfile.TemporaryDirectory() as tmp:
                        model = save_student(ws, result, Path(tmp) / "m.safetensors", tenth)
                        from leafiqa.deploy.modelfile import load_network

                        network, _ = load_network(model)
                        params = sum(p.numel() for p in network.parameters())
                        paths = [ws.manifest[i].path for i in ws.test_rows[: args.speed_images]]
                        speed = scoring_speed(model, paths)
        mean = {k: np.mean(v, axis=0) for k, v in results.items()}
        print(f"{variant:<26} {params / 1e6:>6.2f}M {speed:>6.1f} | {'':>12} "
              f"{mean['mlp'][0]:>8.3f} {mean['mlp'][1]:>6.3f} {mean['ridge'][0]:>10.3f} "
              f"{mean['ridge'][1]:>6.3f} | {'':>9} {mean['leaf'][0]:>6.3f} {mean['leaf'][1]:>6.3f}")


if __name__ == "__main__":
    main()
