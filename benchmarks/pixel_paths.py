"""Draft-mode versus whole decoding of JPEGs, and files versus tensors: accuracy against MOS and
decode speed, with the packaged models on AGIQA-3K split_1's test images.

    python benchmarks/pixel_paths.py [--data ../shared/data/agiqa3k] [--limit N]

``draft``: PIL's JPEG draft mode at the model's largest input size (what ``leaf score`` once
did). ``whole``: the full-resolution decode, which is what every entry point does for these
512-px images: LEAF decodes a JPEG at a reduced scale only down to twice the model's largest
size (``data.images.decode_side``), never down to the size itself. ``tensor``: the image
given to ``create_metric`` as a float (1, 3, H, W) tensor in [0, 1] (resized in torch with
antialiasing, since a tensor has no JPEG to draft or decode)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agiqa3k"
MODELS = ("leaf-agiqa3k", "leaf-clive")


def decode_all(paths: list[Path], draft_side: int | None) -> list:
    from leafiqa.data.images import open_rgb

    return [open_rgb(path, draft_side=draft_side) for path in paths]


def speed(paths: list[Path], sizes: tuple[int, ...], rounds: int = 3) -> dict[str, float]:
    """Decode + resize time per image (ms, one thread), whole and drafted at the largest size,
    interleaved and best of ``rounds`` (the machine may be shared)."""
    from leafiqa.data.images import open_rgb, to_pixels

    best = {"whole": float("inf"), "draft": float("inf")}
    for _ in range(rounds):
        for name, side in (("whole", None), ("draft", max(sizes))):
            start = time.perf_counter()
            for path in paths:
                to_pixels(open_rgb(path, draft_side=side), sizes)
            best[name] = min(best[name], (time.perf_counter() - start) / len(paths) * 1e3)
    return best


def main() -> None:
    import torch

    from leafiqa.data.images import to_pixels
    from leafiqa.data.inputs import read_data
    from leafiqa.evaluation.metrics import evaluate
    from leafiqa.model.metric import create_metric
    from leafiqa.model.scorer import Scorer

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
    for sizes in ((224,), (224, 512)):
        ms = speed(paths[:100], sizes)
        print(f"decode + resize to {sizes}, ms/image (one thread, best of 3 over "
              f"{len(paths[:100])} images): whole {ms['whole']:.2f}, draft {ms['draft']:.2f}")
    whole = decode_all(paths, None)
    for model in MODELS:
        scorer = Scorer(model, runtime="onnx", precision="fp32", threads=1)
        side = max(scorer.input_sizes)
        drafted = decode_all(paths, side)
        print(f"\n{model} (input {scorer.input_sizes}, draft at {side} px)")
        scores = {}
        for name, images in (("whole", whole), ("draft", drafted)):
            levels = [to_pixels(image, scorer.input_sizes) for image in images]
            scores[name] = np.concatenate([scorer.score_pixels(*(np.stack(
                [lv[k] for lv in levels[i:i + 32]]) for k in range(len(scorer.input_sizes))))
                for i in range(0, len(levels), 32)])
            metrics = evaluate(scores[name], mos)
            print(f"  {name:6s} SRCC {metrics['srcc']:.4f}  PLCC {metrics['plcc']:.4f}  "
                  f"RMSE {metrics['rmse']:.4f}")
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
