"""Where scoring's time goes, and how fast it is against OpenCV BRISQUE and against LEAF as it
was (commit 545c446, "today"), all in one run on this machine's cores.

    python benchmarks/scoring_speed.py [MODEL] [--clive-model M] [--images 1200]
        [--photos 40] [--repeat 2] [--sweep]

MODEL defaults to runs/demo/leaf-model.safetensors (`leaf run configs/demo.yaml`), the clive
model to runs/clive/leaf-model.safetensors (`leaf run configs/clive.yaml`); each needs its INT8
graph (`leaf export MODEL --quantize int8 --data ../shared/data/agiqa3k`, clive: `--data
../shared/data/clive-dev`). The script prints:

1. per-stage times, one core, ms per image: open (read the file), decode, resize, inference
   (the scoring graph, batch 8, one thread), write (one CSV row); and start-up (a new process
   until the model's graph is loaded), for the first `--images` AGIQA-3K images (512-px JPEGs)
   and for `--photos` generated 12-MP JPEGs (4000×3000: clive-dev photos upscaled, with noise,
   made deterministically in a temporary folder), INT8 and FP32, today's code beside;
2. end to end, start-up included (a `leaf score` process writing a CSV, on all cores): LEAF INT8
   and FP32 against OpenCV BRISQUE (`cv2.quality.QualityBRISQUE_compute`, the LIVE model files
   of Debian's opencv-data; a process looping over the same files) on the AGIQA-3K images, and
   LEAF INT8 on the 12-MP photos against today's `leaf score`, each pair run `--repeat` times,
   alternating (the machine is shared: read the ratios);
3. one image: `leaf score leaf-clive photo.jpg` (a 12-MP photo) wall time with a warm cache,
   best of 5, beside today's;
4. agreement: the 12-MP scores of the reduced-scale decoding against whole decoding (SRCC,
   mean and max |Δ|), and the test SRCC on both shared data sets' split_1 test images, today's
   `leaf score` and now;
5. with `--sweep`: images/s over the AGIQA-3K images for inference lanes × threads, batch size
   and decoding threads (what `leaf score`'s defaults were chosen from).

`--decoders` only compares JPEG decoders on 10 of the 12-MP photos (PIL whole and at LEAF's
reduced scale; simplejpeg too when it is installed).

Today's code is `git archive 545c446 src` unpacked under runs/bench-speed/ and run with
PYTHONPATH; its INT8 graphs are exported by today's `leaf export` into a folder of their own."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TODAY = "545c446"
WORK = ROOT / "runs" / "bench-speed"
PHOTO_SIZE = (4000, 3000)


# ---- set-up -------------------------------------------------------------------------------

def today_source() -> Path:
    """Commit 545c446's src/, unpacked once (``git archive``: no worktree registered)."""
    target = WORK / f"today-{TODAY}"
    if not (target / "src" / "leafiqa").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", TODAY, "src"],
                                 check=True, capture_output=True).stdout
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def env_for(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source), "PYTHONWARNINGS": "ignore"}


def leaf(source: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leafiqa", *args], env=env_for(source),
                          capture_output=True, text=True, check=check)


def today_model(source: Path, model: Path, data: Path) -> Path:
    """A copy of ``model`` with today's INT8 graph beside it (exported once by today's code)."""
    folder = WORK / f"today-models-{TODAY}" / model.parent.name
    copy = folder / model.name
    if not copy.is_file() or copy.read_bytes() != model.read_bytes():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model, copy)
        for stale in folder.glob("*.onnx"):
            stale.unlink()
    if not copy.with_suffix(".int8.onnx").is_file():
        leaf(source, "export", str(copy), "--quantize", "int8", "--data", str(data))
    return copy


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` 12-MP JPEGs: clive-dev photos upscaled to 4000×3000 (bicubic) with Gaussian
    noise (σ 6), quality 90; the same files on every run."""
    from PIL import Image

    sources = sorted((SHARED / "clive-dev" / "images").glob("*.jpg"))[:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, source in enumerate(sources):
        path = folder / f"photo_{index:03d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng(index)
            image = Image.open(source).convert("RGB").resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
            noisy = np.asarray(image, np.float32) + rng.normal(0, 6, image.size[::-1] + (3,))
            Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(path,
                                                                                   quality=90)
        paths.append(path)
    return paths


# ---- children: each measurement in a process of its own ---------------------------------

def child_stages(model: str, precision: str, listing: str, limit: int) -> dict:
    """ms per image for each stage, one core, in order; works with today's code too."""
    from leafiqa.data import images
    from leafiqa.model.outputs import ScoreWriter
    from leafiqa.model.pixel_graph import pixel_session
    from leafiqa.model.scorer import Scorer

    paths = Path(listing).read_text().split("\n")[:limit]
    scorer = Scorer(model, runtime="onnx", precision=precision, threads=1)
    sizes = scorer.input_sizes
    session = pixel_session(scorer.pixel_graph_path(), 1)
    side = images.decode_side(sizes) if hasattr(images, "decode_side") else None
    times = {"open": 0.0, "decode": 0.0, "resize": 0.0}
    levels = []
    for path in paths:
        start = time.perf_counter()
        data = Path(path).read_bytes()
        opened = time.perf_counter()
        image = (images.decode_bytes_rgb(data, path, draft_side=side) if side
                 else images.decode_bytes_rgb(data, path))
        decoded = time.perf_counter()
        levels.append(images.to_pixels(image, sizes))
        times["open"] += opened - start
        times["decode"] += decoded - opened
        times["resize"] += time.perf_counter() - decoded
    names = [node.name for node in session.get_inputs()]
    batches = [{name: np.stack([lv[k] for lv in levels[i:i + 8]]) for k, name in
                enumerate(names)} for i in range(0, len(levels), 8)]
    session.run(None, batches[0])
    start = time.perf_counter()
    scores = np.concatenate([session.run(None, feed)[0].reshape(-1) for feed in batches])
    times["inference"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with ScoreWriter(Path(tmp) / "scores.csv", force=True, single=False) as writer:
            for path, score in zip(paths, scores, strict=True):
                writer.add(Path(path), float(score), "")
                writer.flush()
        times["write"] = time.perf_counter() - start
    return {name: seconds / len(paths) * 1e3 for name, seconds in times.items()}


def child_brisque(listing: str, reuse: bool) -> dict:
    import cv2

    from leafiqa.teachers.offline import find_brisque_files

    model, ranges = map(str, find_brisque_files())
    paths = Path(listing).read_text().split("\n")
    start = time.perf_counter()
    if reuse:
        brisque = cv2.quality.QualityBRISQUE_create(model, ranges)  # type: ignore[attr-defined]
        values = [brisque.compute(cv2.imread(p))[0] for p in paths]
    else:
        values = [cv2.quality.QualityBRISQUE_compute(  # type: ignore[attr-defined]
            cv2.imread(p), model, ranges)[0] for p in paths]
    return {"seconds": time.perf_counter() - start, "n": len(values)}


def run_child(source: Path, *args: str | int) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)],
                            env=env_for(source), capture_output=True, text=True)
    if output.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:6])} … failed:\n{done.stderr[-3000:]}")
    return seconds, done


def leaf_score(source: Path, model: Path, listing: Path, out: Path, *options: str) -> float:
    """Wall seconds of a whole `leaf score` process (start-up included) writing a CSV."""
    seconds, _ = timed([sys.executable, "-m", "leafiqa", "score", str(model), str(listing),
                        "--out", str(out), "--force", "-q", *options], env_for(source))
    return seconds


def brisque_rate(listing: Path, reuse: bool = False) -> float:
    """images/s of a process looping BRISQUE over the files, start-up included."""
    count = len(listing.read_text().split("\n"))
    seconds, _ = timed([sys.executable, __file__, "--child",
                        json.dumps(["brisque", str(listing), reuse])], env_for(ROOT / "src"))
    return count / seconds


def read_scores(out: Path) -> dict[str, float]:
    with out.open() as handle:
        return {row["path"]: float(row["score"]) for row in csv.DictReader(handle)
                if row["score"]}


# ---- the report -----------------------------------------------------------------------------

def stage_table(rows: list[tuple[str, dict, float]]) -> None:
    print("| set, code, precision | start-up s | open | decode | resize | inference | write | "
          "sum ms/img |")
    print("|---|---|---|---|---|---|---|---|")
    for label, ms, startup in rows:
        total = sum(ms.values())
        print(f"| {label} | {startup:.2f} | {ms['open']:.2f} | {ms['decode']:.1f} | "
              f"{ms['resize']:.1f} | {ms['inference']:.1f} | {ms['write']:.3f} | {total:.1f} |")


def startup_seconds(source: Path, model: Path, precision: str) -> float:
    """A new process until the scoring graph is loaded (best of 3)."""
    code = ("from leafiqa.model.scorer import Scorer; "
            f"Scorer({str(model)!r}, runtime='onnx', precision={precision!r}).engine")
    return min(timed([sys.executable, "-c", code], env_for(source))[0] for _ in range(3))


def agreement(model: Path, photos: list[Path]) -> None:
    from scipy.stats import spearmanr

    from leafiqa.data.images import load_pixels, open_rgb, to_pixels
    from leafiqa.model.scorer import Scorer

    for precision in ("int8", "fp32"):
        scorer = Scorer(model, runtime="onnx", precision=precision)
        sizes = scorer.input_sizes
        fast = np.array([scorer.score_pixels(*(lv[None] for lv in load_pixels(p, sizes)))[0]
                         for p in photos])
        whole = np.array([scorer.score_pixels(*(lv[None] for lv in to_pixels(open_rgb(p),
                                                                              sizes)))[0]
                          for p in photos])
        diff = np.abs(fast - whole)
        print(f"- 12-MP photos, {scorer.engine}: reduced-scale vs whole decoding SRCC "
              f"{spearmanr(fast, whole)[0]:.4f}, mean |Δ| {diff.mean():.4f}, max |Δ| "
              f"{diff.max():.4f} (score std {whole.std():.3f}, {len(photos)} photos)")


def test_srcc(source: Path, model: Path, kind: str, data: Path, tmp: Path) -> tuple[float, int]:
    from scipy.stats import spearmanr

    from leafiqa.data.inputs import read_data

    manifest = read_data(str(data), kind, "split_1").split("test")
    listing = tmp / f"{kind}-test.txt"
    listing.write_text("\n".join(str(item.path) for item in manifest))
    out = tmp / f"{kind}-{source.parent.name}.csv"
    leaf_score(source, model, listing, out)
    scores = read_scores(out)
    values = [scores[str(item.path)] for item in manifest]
    return float(spearmanr(values, manifest.mos_array())[0]), len(values)


def decoders(photos: list[Path], side: int, rounds: int = 3) -> None:
    """ms per 12-MP photo, one thread, best of ``rounds``: PIL whole and at the reduced DCT
    scale LEAF uses, and simplejpeg (libjpeg-turbo's M/8 scaling) when it is installed."""
    from PIL import Image

    datas = [p.read_bytes() for p in photos]

    def pil(data: bytes, draft: bool) -> object:
        image = Image.open(io.BytesIO(data))
        if draft:
            image.draft("RGB", (side, side))
        image.load()
        return image

    candidates = {"PIL, whole": lambda d: pil(d, False),
                  f"PIL draft (1/2, 1/4, 1/8) to ≥ {side} px, LEAF's": lambda d: pil(d, True)}
    try:
        import simplejpeg

        candidates[f"simplejpeg to ≥ {side} px (M/8 scale)"] = lambda d: simplejpeg.decode_jpeg(
            d, colorspace="RGB", min_width=side, min_height=side)
        candidates["simplejpeg, fastdct + fastupsample (other pixels)"] = (
            lambda d: simplejpeg.decode_jpeg(d, colorspace="RGB", min_width=side,
                                             min_height=side, fastdct=True, fastupsample=True))
    except ImportError:
        print("(simplejpeg not installed: `pip install simplejpeg` to compare it)")
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(rounds):
        for name, decode in candidates.items():
            start = time.perf_counter()
            for data in datas:
                decode(data)
            best[name] = min(best[name], (time.perf_counter() - start) / len(datas) * 1e3)
    whole = best["PIL, whole"]
    for name, ms in best.items():
        print(f"- {name}: {ms:.1f} ms/photo ({whole / ms:.2f}× whole)")


def sweep(model: Path, paths: list[Path], rounds: int = 2) -> None:
    """images/s (decode included, in this process) for inference lanes × threads per lane,
    batch size and decoding threads, the configurations in turns, best of ``rounds``."""
    from leafiqa.model.pixel_graph import PixelGraphScorer, iter_scored, pixel_session
    from leafiqa.model.scorer import Scorer

    graph = Scorer(model, runtime="onnx", precision="int8").pixel_graph_path()
    scorers = {}
    for lanes, threads in ((2, 1), (1, 2)):
        scorer = PixelGraphScorer(graph, lanes)
        if lanes == 1:
            scorer.session = pixel_session(graph, threads)
        scorers[(lanes, threads)] = scorer
    configs = [(lanes, threads, batch, workers) for lanes, threads in scorers
               for batch in (1, 8) for workers in (1, 2)]
    best = dict.fromkeys(configs, 0.0)
    for _ in range(rounds):
        for lanes, threads, batch, workers in configs:
            scorer = scorers[(lanes, threads)]
            start = time.perf_counter()
            count = sum(len(b.paths) for b in iter_scored(
                scorer.score_pixels, paths, scorer.input_sizes, lanes, batch, workers))
            rate = count / (time.perf_counter() - start)
            key = (lanes, threads, batch, workers)
            best[key] = max(best[key], rate)
    print(f"\n## Lanes, threads, batch, decoding threads ({len(paths)} AGIQA-3K images, INT8, "
          f"best of {rounds})\n")
    print("| inference lanes × threads each | batch | decoding threads | images/s |")
    print("|---|---|---|---|")
    for (lanes, threads, batch, workers), rate in best.items():
        print(f"| {lanes} × {threads} | {batch} | {workers} | {rate:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?",
                        default=ROOT / "runs" / "demo" / "leaf-model.safetensors")
    parser.add_argument("--clive-model", type=Path,
                        default=ROOT / "runs" / "clive" / "leaf-model.safetensors")
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--decoders", action="store_true",
                        help="only compare the JPEG decoders on the 12-MP photos")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        result = child_stages(*rest) if kind == "stages" else child_brisque(*rest)
        print(json.dumps(result))
        return
    import logging

    from leafiqa.model.graphs import int8_path

    if args.decoders:
        with tempfile.TemporaryDirectory() as tmp_name:
            decoders(make_photos(Path(tmp_name), min(args.photos, 10)), 1024)
        return

    logging.getLogger("leafiqa").setLevel(logging.ERROR)  # data sets' duplicate warnings
    for model, data in ((args.model, "agiqa3k"), (args.clive_model, "clive-dev")):
        if not int8_path(model).is_file():
            raise SystemExit(f"{model}: no INT8 graph; run leaf export {model} --quantize int8 "
                             f"--data {SHARED / data}")
    now = ROOT / "src"
    old = today_source()
    old_model = today_model(old, args.model, SHARED / "agiqa3k")
    old_clive = today_model(old, args.clive_model, SHARED / "clive-dev")
    agiqa = sorted((SHARED / "agiqa3k" / "images").glob("*.jpg"))[: args.images]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos = make_photos(tmp / "photos", args.photos)
        listings = {"agiqa": tmp / "agiqa.txt", "photos": tmp / "photos.txt"}
        listings["agiqa"].write_text("\n".join(map(str, agiqa)))
        listings["photos"].write_text("\n".join(map(str, photos)))
        print(f"{len(agiqa)} AGIQA-3K images (512 px), {len(photos)} generated 12-MP JPEGs "
              f"({os.cpu_count()} cores; today = {TODAY}); model {args.model}\n")

        # 1. per-stage times
        print("## Per stage (one core; ms per image, start-up in seconds)\n")
        rows = []
        for set_name, listing, limit in (("AGIQA-3K", listings["agiqa"], 200),
                                         ("12-MP", listings["photos"], len(photos))):
            for code, source, model in (("now", now, args.model), ("today", old, old_model)):
                for precision in ("int8", "fp32"):
                    if set_name == "12-MP" and precision == "fp32" and code == "today":
                        continue
                    ms = run_child(source, "stages", str(model), precision, str(listing), limit)
                    rows.append((f"{set_name}, {code}, {precision.upper()}", ms,
                                 startup_seconds(source, model, precision)))
        stage_table(rows)

        # 2. end to end
        print("\n## End to end, start-up included (all cores)\n")
        rates: dict[str, list[float]] = {}
        out = tmp / "scores.csv"
        n_agiqa, n_photos = len(agiqa), len(photos)
        for _ in range(args.repeat):
            rates.setdefault("BRISQUE (QualityBRISQUE_compute)", []).append(
                brisque_rate(listings["agiqa"]))
            rates.setdefault("BRISQUE (one QualityBRISQUE object)", []).append(
                brisque_rate(listings["agiqa"], reuse=True))
            rates.setdefault("LEAF INT8, now", []).append(
                n_agiqa / leaf_score(now, args.model, listings["agiqa"], out))
            rates.setdefault("LEAF FP32, now", []).append(
                n_agiqa / leaf_score(now, args.model, listings["agiqa"], out,
                                     "--precision", "fp32"))
            rates.setdefault("LEAF INT8, today", []).append(
                n_agiqa / leaf_score(old, old_model, listings["agiqa"], out))
            rates.setdefault("12-MP LEAF INT8, now", []).append(
                n_photos / leaf_score(now, args.model, listings["photos"], out))
            rates.setdefault("12-MP LEAF INT8, today", []).append(
                n_photos / leaf_score(old, old_model, listings["photos"], out))
        print("| what | images/s, each run |")
        print("|---|---|")
        for name, values in rates.items():
            print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} |")
        ratio = [a / b for a, b in zip(rates["LEAF INT8, now"],
                                       rates["BRISQUE (QualityBRISQUE_compute)"], strict=True)]
        strict = [a / b for a, b in zip(rates["LEAF INT8, now"],
                                        rates["BRISQUE (one QualityBRISQUE object)"],
                                        strict=True)]
        photo_ratio = [a / b for a, b in zip(rates["12-MP LEAF INT8, now"],
                                             rates["12-MP LEAF INT8, today"], strict=True)]
        print(f"\nLEAF INT8 ÷ BRISQUE (QualityBRISQUE_compute), {n_agiqa} AGIQA-3K images: "
              f"{', '.join(f'{r:.2f}×' for r in ratio)}  (target ≥ 2×)")
        print(f"LEAF INT8 ÷ BRISQUE with one reused BRISQUE object: "
              f"{', '.join(f'{r:.2f}×' for r in strict)}")
        print(f"12-MP JPEGs, LEAF INT8 now ÷ today: {', '.join(f'{r:.2f}×' for r in photo_ratio)}"
              f"  (target ≥ 3×)")

        # 3. one image
        photo = tmp / "photo.jpg"
        shutil.copy2(photos[0], photo)
        walls = {}
        for code, source in (("now", now), ("today", old)):
            leaf(source, "score", "leaf-clive", str(photo))  # warm: the graph is cached
            walls[code] = [timed([sys.executable, "-m", "leafiqa", "score", "leaf-clive",
                                  str(photo)], env_for(source))[0] for _ in range(5)]
        print(f"\nOne image, `leaf score leaf-clive photo.jpg` (12-MP), warm, best of 5: "
              f"now {min(walls['now']):.2f} s (median {statistics.median(walls['now']):.2f}), "
              f"today {min(walls['today']):.2f} s (median "
              f"{statistics.median(walls['today']):.2f})  (target ≤ 1.0 s)")

        print("\n## JPEG decoders on the 12-MP photos (one thread)\n")
        decoders(photos[:10], 1024)

        # 4. agreement
        print("\n## Agreement\n")
        agreement(args.model, photos)
        for kind, folder, model, old_m in (("agiqa3k", SHARED / "agiqa3k", args.model, old_model),
                                           ("clive", SHARED / "clive-dev", args.clive_model,
                                            old_clive)):
            srcc_now, count = test_srcc(now, model, kind, folder, tmp)
            srcc_old, _ = test_srcc(old, old_m, kind, folder, tmp)
            print(f"- {kind} split_1 test ({count} images, `leaf score` INT8): SRCC now "
                  f"{srcc_now:.4f}, today {srcc_old:.4f}, Δ {srcc_now - srcc_old:+.4f} "
                  f"(tolerance ±0.003)")
        if args.sweep:
            sweep(args.model, agiqa[:300])


if __name__ == "__main__":
    main()
