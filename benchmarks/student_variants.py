"""Student variants on AGIQA-3K: accuracy with 100 % of the training MOS and with LEAF at 10 %,
parameter count, input size and `leaf score` speed on this machine, over split_1 … split_5.

    python benchmarks/student_variants.py [--variants efficientnet-lite0:224,…:224+512]

A variant is ``backbone:size`` or ``backbone:size+size`` (an image pyramid). Features are cached
in runs/cache (the first run of a new size extracts them: minutes). Speed is `leaf score`'s
(ONNX Runtime when installed, decode and resize included) on the first split's test images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from leafiqa.config import load_config
from leafiqa.evaluation.metrics import evaluate
from leafiqa.experiments.methods import run_labels_only, run_leaf, run_linear_probe
from leafiqa.experiments.pipeline import save_student
from leafiqa.experiments.workspace import Workspace, label_count, prepare
from leafiqa.labelling.designs import select_labels

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ("efficientnet-lite0:224,efficientnet-lite0:384,efficientnet-lite0:512,"
                    "efficientnet-lite2:384,efficientnet-lite0:224+384,efficientnet-lite0:224+512")


def scoring_speed(model: Path, paths: list[Path]) -> float:
    from leafiqa.model.scorer import Scorer

    scorer = Scorer(model, runtime="auto")
    scorer.score_paths(paths[:8])
    start = time.perf_counter()
    scorer.score_paths(paths)
    return len(paths) / (time.perf_counter() - start)


def model_size(ws: Workspace, result, labels: np.ndarray, paths: list[Path]  # noqa: ANN001
               ) -> tuple[int, float]:
    """Parameters and `leaf score` images/s of the saved model file."""
    from leafiqa.model.file import load_network

    with tempfile.TemporaryDirectory() as tmp:
        model = save_student(ws, result, Path(tmp) / "m.safetensors", labels)
        network, _ = load_network(model)
        return sum(p.numel() for p in network.parameters()), scoring_speed(model, paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--speed-images", type=int, default=300)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"AGIQA-3K, mean over split_1…split_{args.splits}; images/s of `leaf score` on this "
          "machine\n")
    print("| variant | params | input | images/s | 100 % MOS: MLP SRCC / PLCC | ridge SRCC / PLCC "
          "| LEAF 10 %: SRCC / PLCC |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variants.split(","):
        backbone, sizes_text = variant.split(":")
        sizes = [int(s) for s in sizes_text.split("+")]
        config = load_config(args.config, {"student.backbone": backbone,
                                           "student.input_size": sizes})
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
                                 ("leaf", run_leaf(ws, tenth, config.distill.seed))):
                metrics = evaluate(result.predictions, mos)
                results[name].append((metrics["srcc"], metrics["plcc"]))
                if index == 1 and name == "leaf":
                    paths = [ws.manifest[i].path for i in ws.test_rows[: args.speed_images]]
                    params, speed = model_size(ws, result, tenth, paths)
        mean = {k: np.mean(v, axis=0) for k, v in results.items()}
        size_text = " + ".join(f"{s}²" for s in sizes)
        print(f"| {backbone} | {params / 1e6:.2f} M | {size_text} | {speed:.1f} "
              f"| {mean['mlp'][0]:.3f} / {mean['mlp'][1]:.3f} "
              f"| {mean['ridge'][0]:.3f} / {mean['ridge'][1]:.3f} "
              f"| {mean['leaf'][0]:.3f} / {mean['leaf'][1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
