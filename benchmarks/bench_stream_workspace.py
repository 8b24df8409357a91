"""Peak memory of a run's workspace path (distil, calibrate, baselines) against pool size.

A synthetic pool of ``--images`` images × ``--features`` float32 features is written to a
``.npy`` file chunk by chunk (a stand-in for the feature store), with a teacher judgment for
every image, ``--labels`` MOS-labelled training images and ``--test`` test images. The script
then does what ``leaf run`` does with a workspace: the feature scalers, the distilled ridge
head, the student's scores over the pool, the calibration on the labels with the accuracy
estimate, the teacher-alone and linear-probe baselines. The "student on labels alone" MLP is
left out: it holds the training images' features in memory on every version.

It runs on whichever LEAF is on PYTHONPATH: a workspace with ``feature_source`` (streamed, the
features read from the file in chunks) or an older one with ``features`` (the whole matrix
loaded, as ``leaf run`` did). Run each in a fresh process; it prints the peak resident memory.

    PYTHONPATH=src nice python benchmarks/bench_stream_workspace.py --images 100000
    git archive main src | tar -x -C /tmp/leaf-main
    PYTHONPATH=/tmp/leaf-main/src nice python benchmarks/bench_stream_workspace.py --images 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from pathlib import Path

import numpy as np

from leafiqa.config import load_config
from leafiqa.data.manifest import ImageItem, Manifest
from leafiqa.evaluation.metrics import evaluate
from leafiqa.experiments.methods import run_leaf, run_linear_probe, run_teacher_alone
from leafiqa.experiments.workspace import TeacherView, Workspace
from leafiqa.student.ridge import FeatureSource
from leafiqa.teachers.protocol import PointJudgment

REPO = Path(__file__).resolve().parents[1]


def write_pool(path: Path, n: int, d: int, chunk: int = 8192) -> np.ndarray:
    """The pool's features on disk (float32 .npy); returns every image's latent quality."""
    rng = np.random.default_rng(0)
    quality = rng.normal(size=n)
    loadings = rng.normal(size=(2, d))
    style = rng.normal(size=n)
    if not path.is_file() or np.load(path, mmap_mode="r").shape != (n, d):
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            noise = np.random.default_rng(start + 1).normal(size=(stop - start, d))
            latent = np.column_stack([quality[start:stop], style[start:stop]])
            out[start:stop] = latent @ loadings + noise
        out.flush()
        del out
    return quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    n, d = args.images, args.features
    path = args.dir / f"leaf-stream-pool-{n}x{d}.npy"
    quality = write_pool(path, n, d)
    rng = np.random.default_rng(1)
    test = set(rng.choice(n, size=args.test, replace=False).tolist())
    train = [i for i in range(n) if i not in test]
    labelled = set(rng.choice(train, size=args.labels, replace=False).tolist()) | test
    mos = 3 + quality + 0.3 * rng.normal(size=n)
    items = [ImageItem(Path(f"img{i}.jpg"), f"img{i}.jpg",
                       float(mos[i]) if i in labelled else None,
                       split="test" if i in test else "train") for i in range(n)]
    keys = [f"key{i}" for i in range(n)]
    judged = 1 / (1 + np.exp(-(quality + 0.8 * rng.normal(size=n))))
    points = {key: PointJudgment(key, "synthetic", "v1", ("good", "poor"),
                                 (float(p), 1 - float(p)), float(p), 0.9, "logits")
              for key, p in zip(keys, judged, strict=True)}
    config = load_config(REPO / "configs" / "demo.yaml", {"output": str(args.dir / "run")})
    manifest = Manifest(items, "synthetic")
    train_rows, test_rows = np.array(train), np.array(sorted(test))
    mos_column = np.array([np.nan if i.mos is None else i.mos for i in items])
    fields = {f.name for f in dataclasses.fields(Workspace)}
    started, cpu = time.perf_counter(), time.process_time()
    if "feature_source" in fields:  # streamed: the rows stay in the file
        offset = np.load(path, mmap_mode="r").offset  # plain reads: a memory map's pages
        source = FeatureSource(n, d, lambda a, b: np.fromfile(  # would count as resident
            path, np.float32, (b - a) * d, offset=offset + a * d * 4).reshape(-1, d))
        features: dict = {"feature_source": source}
        form = "streamed (feature_source)"
    else:  # an older workspace: the whole matrix in memory, as its prepare() made it
        features = {"features": np.load(path)}
        form = "in memory (features)"
    ws = Workspace(config, manifest, keys, train_rows, test_rows, mos=mos_column,
                   teacher=TeacherView("synthetic", points, []), **features)
    label_rows = np.flatnonzero(~np.isnan(mos_column[train_rows]))
    leaf = run_leaf(ws, label_rows, 0, estimate=True)
    baselines = [run_teacher_alone(ws, label_rows), run_linear_probe(ws, label_rows)]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{n} images × {d} features, {form}: peak RSS {peak:.2f} GB, "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU")
    for result in [leaf, *baselines]:
        srcc = evaluate(result.predictions, mos_column[test_rows], True)["srcc"]
        print(f"  {result.method:28s} SRCC {srcc:.4f}")


if __name__ == "__main__":
    main()
