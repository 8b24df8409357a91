"""Which scoring graph: INT8 quantization variants, ONNX Runtime's optimisation levels and the
pyramid's 512-px level, each with its speed (the graph alone, one thread) and its test SRCC on
both shared data sets, measured in one run.

    python benchmarks/graph_variants.py [--agiqa runs/demo/leaf-model.safetensors]
        [--clive runs/clive/leaf-model.safetensors] [--agiqa-224 runs/demo224/...]
        [--clive-224 runs/clive224/...] [--variants default,qoperator,...]

The models: `leaf run configs/demo.yaml` (AGIQA-3K split_1) and `leaf run configs/clive.yaml`
(clive-dev split_1), both 224+512 px; the `-224` ones are the same configs with
`--set student.input_size=224 --set output=runs/demo224` (and `runs/clive224`). Each variant is
quantized from the model's FP32 pixel graph (calibrated on 64 training images, as `leaf export
--quantize int8` does) and scores the split_1 test images (decoded once, by `load_pixels`);
speed is the graph alone on 64 real test images, one thread, batch 8, the variants timed in
turns, best of `--rounds` (the machine may be shared: read the ratios). A variant is kept only
if its test SRCC stays within ±0.003 of today's INT8 graph on both sets."""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TOLERANCE = 0.003


@dataclass
class DataSet:
    name: str
    model: Path
    model_224: Path | None
    train: list[Path]
    test: list[Path]
    mos: np.ndarray
    pixels: list[tuple[np.ndarray, ...]]


def recipes() -> dict:
    from leafiqa.model.quantize import Recipe

    base = Recipe()
    # (percentile calibration is left out: its histograms of the 512-px activations took more
    # than 20 GB)
    return {
        "default": base,
        "block0-int8": replace(base, fp32_blocks=0),
        "all-int8": replace(base, fp32_blocks=-1),
        "qoperator": replace(base, quant_format="qoperator"),
        "per-tensor": replace(base, per_channel=False),
        "s8s8": replace(base, activations="int8"),
        "blocks0-2-fp32": replace(base, fp32_blocks=3),
        "convs-only": replace(base, ops=("Conv",)),
    }


def load_set(name: str, kind: str, data: Path, model: Path, model_224: Path | None) -> DataSet:
    from leafiqa.data.images import load_pixels
    from leafiqa.data.inputs import read_data
    from leafiqa.model.modelinfo import read_info

    manifest = read_data(str(data), kind, "split_1")
    train = [Path(item.path) for item in manifest.split("train")]
    test_manifest = manifest.split("test")
    test = [Path(item.path) for item in test_manifest]
    sizes = read_info(model).input_sizes
    pixels = [load_pixels(path, sizes) for path in test]
    return DataSet(name, model, model_224, train, test, np.array(test_manifest.mos_array()),
                   pixels)


def scores(session, pixels: list[tuple[np.ndarray, ...]], batch: int = 16) -> np.ndarray:  # noqa: ANN001
    names = [node.name for node in session.get_inputs()]
    levels = len(names)
    out = []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start:start + batch]
        feed = {name: np.stack([p[k] for p in chunk]) for k, name in enumerate(names)}
        out.append(session.run(None, feed)[0].reshape(-1))
    del levels
    return np.concatenate(out)


def session(path: Path, level: str = "all"):  # noqa: ANN201
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure(rows: dict, data: DataSet, reference: np.ndarray, name: str, path: Path,
            level: str = "all") -> None:
    """Test SRCC against MOS and against the FP32 graph's scores, into ``rows[name]``."""
    from scipy.stats import spearmanr

    got = scores(session(path, level), data.pixels)
    row = rows.setdefault(name, {})
    row[f"{data.name} srcc"] = float(spearmanr(got, data.mos)[0])
    row[f"{data.name} vs fp32"] = float(spearmanr(got, reference)[0])
    print(f"  {name}: test SRCC {row[f'{data.name} srcc']:.4f}, SRCC vs FP32 "
          f"{row[f'{data.name} vs fp32']:.4f}", flush=True)


def speed(sessions: dict, pixels: list[tuple[np.ndarray, ...]], rounds: int) -> dict[str, float]:
    """ms per image for each session (one thread, batch 8), timed in turns, best of rounds."""
    best = {name: float("inf") for name in sessions}
    for _ in range(rounds):
        for name, sess in sessions.items():
            names = [node.name for node in sess.get_inputs()]
            levels = [names.index(n) for n in names]
            feeds = [{n: np.stack([p[k] for p in pixels[i:i + 8]]) for k, n in zip(levels, names,
                                                                                  strict=True)}
                     for i in range(0, len(pixels) - 7, 8)]
            sess.run(None, feeds[0])
            start = time.perf_counter()
            for feed in feeds:
                sess.run(None, feed)
            best[name] = min(best[name], (time.perf_counter() - start) / (8 * len(feeds)) * 1e3)
    return best


def main() -> None:
    from scipy.stats import spearmanr

    from leafiqa.model.quantize import quantize_int8
    from leafiqa.model.scorer import pixel_graph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agiqa", type=Path, default=Path("runs/demo/leaf-model.safetensors"))
    parser.add_argument("--clive", type=Path, default=Path("runs/clive/leaf-model.safetensors"))
    parser.add_argument("--agiqa-224", type=Path,
                        default=Path("runs/demo224/leaf-model.safetensors"))
    parser.add_argument("--clive-224", type=Path,
                        default=Path("runs/clive224/leaf-model.safetensors"))
    parser.add_argument("--variants", default="default,block0-int8,all-int8,qoperator,"
                                              "per-tensor,s8s8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    chosen = {name: recipes()[name] for name in args.variants.split(",")}
    sets = [load_set("AGIQA-3K", "agiqa3k", args.data / "agiqa3k", args.agiqa, args.agiqa_224),
            load_set("clive-dev", "clive", args.data / "clive-dev", args.clive, args.clive_224)]
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for data in sets:
            print(f"{data.name}: {len(data.test)} test images, {len(data.train)} training images "
                  f"({data.model})", flush=True)
            graphs: dict[str, tuple[Path, str]] = {}
            fp32, _ = pixel_graph(data.model, "fp32")
            graphs["FP32"] = (fp32, "all")
            reference = scores(session(fp32), data.pixels)

            measure(rows, data, reference, "FP32", fp32)
            for name, recipe in chosen.items():
                out = Path(tmp) / f"{data.name}-{name}.onnx"
                _, parity = quantize_int8(data.model, data.train, out, recipe=recipe)
                graphs[name] = (out, "all")
                rows.setdefault(name, {"recipe": recipe.describe()})[f"{data.name} parity"] = \
                    parity.srcc
                print(f"  {name}: {recipe.describe()}; parity SRCC {parity.srcc:.4f}", flush=True)
                measure(rows, data, reference, name, out)
            for level in ("basic", "extended"):
                graphs[f"default, ORT {level}"] = (graphs["default"][0], level)
                measure(rows, data, reference, f"default, ORT {level}", graphs["default"][0],
                        level)
            sessions = {name: session(path, level) for name, (path, level) in graphs.items()}
            if data.model_224 is not None and data.model_224.is_file():
                from leafiqa.data.images import load_pixels

                small = [load_pixels(path, (224,)) for path in data.test]
                path224, _ = pixel_graph(data.model_224, "fp32")
                out = Path(tmp) / f"{data.name}-224.onnx"
                quantize_int8(data.model_224, data.train, out)
                for name, path in (("224 only, FP32", path224), ("224 only, INT8", out)):
                    sess = session(path)
                    rows.setdefault(name, {})[f"{data.name} srcc"] = float(
                        spearmanr(scores(sess, small), data.mos)[0])
                    rows[name][f"{data.name} ms"] = speed({name: sess}, small[:64],
                                                          args.rounds)[name]
            for name, ms in speed(sessions, data.pixels[:64], args.rounds).items():
                rows[name][f"{data.name} ms"] = ms
    base = rows["default"]
    print(f"\n| graph | {' | '.join(f'{d.name} test SRCC (Δ vs default INT8)' for d in sets)} | "
          f"{' | '.join(f'{d.name} ms/img (× default)' for d in sets)} | kept |")
    print("|---|" + "---|" * (2 * len(sets) + 1))
    for name, row in rows.items():
        cells, within = [], True
        for d in sets:
            value = row.get(f"{d.name} srcc")
            if value is None:
                cells.append("—")
                continue
            delta = value - base[f"{d.name} srcc"]
            within = within and abs(delta) <= TOLERANCE
            cells.append(f"{value:.4f} ({delta:+.4f})")
        times = [f"{row[f'{d.name} ms']:.1f} ({base[f'{d.name} ms'] / row[f'{d.name} ms']:.2f}×)"
                 if f"{d.name} ms" in row else "—" for d in sets]
        label = f"{name}: {row['recipe']}" if "recipe" in row else name
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(times)} | "
              f"{'yes' if within else 'no'} |")


if __name__ == "__main__":
    main()
