"""Draft-mode versus whole decoding of JPEGs, and files versus tensors: accuracy against MOS and
decode speed, with the packaged models on AGIQA-3K split_1's test images.

    python benchmarks/pixel_paths.py [--data ../shared/data/agiqa3k] [--limit N]

``draft``: PIL's JPEG draft mode at the model's largest input size (what ``leaf score`` did
before LEAF decoded every image whole). ``whole``: the full-resolution decode every entry point
uses now, and the one the packaged models' training features came from. ``tensor``: the image
given to ``create_metric`` as a float (1, 3, H, W) tensor in [0, 1] (resized in torch with
antialiasing, since a tensor has no JPEG to draft or decode)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agiqa3k"
MODELS = ("leaf-agiqa3k", "leaf-clive")


def decode_all(paths: list[Path], draft_side: int | None) -> tuple[list, float]:
    """Every image as RGB, and the decode time per image (ms, one thread)."""
    from leafiqa.data.images import open_rgb

    start = time.perf_counter()
    images = [open_rgb(path, draft_side=draft_side) for path in paths]
    return images, (time.perf_counter() - start) / len(paths) * 1e3


def main() -> None:
    import torch

    from leafiqa.cli import read_data
    from leafiqa.data.images import to_pixels
    from leafiqa.deploy.scorer import Scorer
    from leafiqa.evaluation.metrics import evaluate
    from leafiqa.metric import create_metric

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = read_data(args.data, "agiqa3k", "split_1").split("test")
    if args.limit:
        manifest = manifest.head(args.limit)
    paths = [Path(item.path) for item in manifest]
    mos = np.array(manifest.mos_array())
    print(f"{len(paths)} AGIQA-3K split_1 test images")
    whole, whole_ms = decode_all(paths, None)
    for model in MODELS:
        scorer = Scorer(model, runtime="onnx", precision="fp32", threads=1)
        side = max(scorer.input_sizes)
        drafted, draft_ms = decode_all(paths, side)
        print(f"\n{model} (input {scorer.input_sizes}); decode only, ms/image: whole "
              f"{whole_ms:.2f}, draft at {side} px {draft_ms:.2f}")
        scores = {}
        for name, images in (("whole", whole), ("draft", drafted)):
            start = time.perf_counter()
            levels = [to_pixels(image, scorer.input_sizes) for image in images]
            resize_ms = (time.perf_counter() - start) / len(images) * 1e3
            scores[name] = np.concatenate([scorer.score_pixels(*(np.stack(
                [lv[k] for lv in levels[i:i + 32]]) for k in range(len(scorer.input_sizes))))
                for i in range(0, len(levels), 32)])
            metrics = evaluate(scores[name], mos)
            print(f"  {name:6s} SRCC {metrics['srcc']:.4f}  PLCC {metrics['plcc']:.4f}  "
                  f"RMSE {metrics['rmse']:.4f}  (resize {resize_ms:.2f} ms/image)")
        metric = create_metric(model, device="cpu")
        with torch.inference_mode():
            scores["tensor"] = np.concatenate([metric(torch.from_numpy(
                np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 255.0)).numpy()
                for image in whole])
        metrics = evaluate(scores["tensor"], mos)
        print(f"  tensor SRCC {metrics['srcc']:.4f}  PLCC {metrics['plcc']:.4f}  "
              f"RMSE {metrics['rmse']:.4f}")
        for other in ("draft", "tensor"):
            diff = np.abs(scores[other] - scores["whole"])
            print(f"  |{other} − whole|: mean {diff.mean():.4f}, max {diff.max():.4f} "
                  f"(score range {scorer.info.score_range})")


if __name__ == "__main__":
    main()
