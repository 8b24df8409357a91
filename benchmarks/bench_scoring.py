"""Scoring throughput and peak memory on 2 CPU cores: the naive loop (one image at a time),
`leaf score` with PyTorch, and with ONNX Runtime, on the same AGIQA-3K images, in one run.

    python benchmarks/bench_scoring.py MODEL [--images 500] [--size 224]

``--size`` re-labels a copy of a single-size model file with another input size (the head
reads pooled features, so any size runs); use it to time sizes, not to score for real. Without
it the model's own input size (or image pyramid) is timed. Each mode runs in its
own process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agiqa3k"


def relabel(model: Path, size: int | None, folder: Path) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    from leafiqa.deploy.modelfile import read_info

    sizes = list(read_info(model).input_sizes)
    if size is None or sizes == [size]:
        return model
    if len(sizes) > 1:
        raise SystemExit("--size re-labels single-size models only; this one reads a pyramid")
    metadata["input_size"], metadata["input_sizes"] = str(size), json.dumps([size])
    out = folder / f"model-{size}.safetensors"
    save_file(tensors, str(out), metadata=metadata)
    return out


def run_mode(mode: str, model: Path, paths: list[str]) -> dict:
    import torch

    from leafiqa.deploy.scorer import Scorer

    start = time.perf_counter()
    if mode == "naive":
        torch.set_num_threads(2)
        scorer = Scorer(model, runtime="torch")
        scorer.network = scorer.network.to(memory_format=torch.contiguous_format)
        start = time.perf_counter()
        for path in paths:
            scorer(path)
    else:
        scorer = Scorer(model, runtime=mode, threads=2)
        from PIL import Image

        scorer.score_images([Image.new("RGB", (64, 64))])  # warm-up (ONNX export, allocation)
        start = time.perf_counter()
        count = sum(len(b.paths) for b in scorer.iter_scores([Path(p) for p in paths], 32))
        assert count == len(paths)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "images_per_s": len(paths) / seconds, "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, model, listing = args.child.split("|")
        print(json.dumps(run_mode(mode, Path(model), Path(listing).read_text().split("\n"))))
        return
    paths = sorted(str(p) for p in (args.data / "images").glob("*.jpg"))[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        model = relabel(args.model, args.size, Path(tmp))
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths))
        results = []
        for mode in ("naive", "torch", "onnx"):
            output = subprocess.run([sys.executable, __file__, str(model), "--child",
                                     f"{mode}|{model}|{listing}"], capture_output=True,
                                    text=True, check=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    naive = results[0]["images_per_s"]
    from leafiqa.deploy.modelfile import read_info

    sizes = "+".join(str(s) for s in read_info(args.model).input_sizes) if args.size is None else (
        str(args.size))
    print(f"{len(paths)} AGIQA-3K images at {sizes} px (decode and resize included)")
    print(f"{'mode':<24} {'images/s':>9} {'× naive':>8} {'peak MB':>8}")
    names = {"naive": "naive loop (1 at a time)", "torch": "leaf score (PyTorch)",
             "onnx": "leaf score (ONNX)"}
    for r in results:
        print(f"{names[r['mode']]:<24} {r['images_per_s']:>9.1f} "
              f"{r['images_per_s'] / naive:>7.1f}× {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
