"""Where a pixel graph's time goes: decode + resize per image, then ONNX Runtime's own per-node
profile (one thread, batch 8) summed by operator type and by node.

    python benchmarks/profile_scoring.py runs/demo/leaf-model.int8.onnx [--images 64]

Any uint8-pixel graph works (``MODEL.int8.onnx`` or the FP32 one the Scorer exports)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agiqa3k"


def main() -> None:
    import onnxruntime as ort

    from leafiqa.data.images import load_pixels
    from leafiqa.model.pixel_graph import graph_sizes, pixel_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", type=Path)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--data", type=Path, default=SHARED / "images")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    sizes = graph_sizes(pixel_session(args.graph))
    paths = sorted(args.data.glob("*"))[: args.images]
    start = time.perf_counter()
    pixels = [load_pixels(p, sizes) for p in paths]
    print(f"decode + resize to {sizes}: {(time.perf_counter() - start) / len(paths) * 1e3:.1f} "
          f"ms/image (one thread)")
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(args.graph), options,
                                       providers=["CPUExecutionProvider"])
        names = [node.name for node in session.get_inputs()]
        feeds = [dict(zip(names, (np.stack([p[k] for p in pixels[i : i + 8]])
                                  for k in range(len(sizes))), strict=True))
                 for i in range(0, len(pixels) - 7, 8)]
        session.run(None, feeds[0])
        start = time.perf_counter()
        for feed in feeds[1:]:
            session.run(None, feed)
        timed = 8 * (len(feeds) - 1)
        print(f"network: {(time.perf_counter() - start) / max(1, timed) * 1e3:.1f} ms/image "
              f"(one thread, batch 8, profiling on)")
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: Counter = Counter()
    by_node: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
            by_node[event["name"].removesuffix("_kernel_time")] += event["dur"]
    total = sum(by_op.values()) or 1
    for title, counts in (("operator", by_op), ("node", by_node)):
        print(f"\n{'share':>6}  {title}")
        for name, micros in counts.most_common(args.top):
            print(f"{micros / total * 100:5.1f}%  {name}")


if __name__ == "__main__":
    main()
