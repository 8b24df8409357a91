"""Frozen vs fully fine-tuned student (``student.finetune: full``) at 0 and 10 % labels on
AGIQA-3K and clive-dev (split_1, recorded InternLM teacher), printed as one table. Sized for one
GPU in under 8 minutes (bfloat16, DataLoader workers); run through ``benchmarks/gpu_check.sh``.

    benchmarks/gpu_check.sh [--backbone hf:/models/convnext-base] [--epochs 4] [--sizes 224+512]
    benchmarks/gpu_check.sh --smoke     # CPU-sized: a tiny random ConvNeXt, 24 images made here

The smoke version checks the path (CI), its figures mean nothing: a random backbone on
synthetic images."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from leafiqa.config import RunConfig, load_config
from leafiqa.data.splits import labelled_rows
from leafiqa.evaluation.metrics import evaluate
from leafiqa.experiments.methods import run_leaf
from leafiqa.experiments.pipeline import tune_backbone
from leafiqa.experiments.workspace import label_count, prepare
from leafiqa.labelling.designs import embed, select_among_labelled
from leafiqa.student.tail_tuning import autocast_dtype, training_device

REPO = Path(__file__).resolve().parents[1]
DATASETS = {"AGIQA-3K": REPO / "configs" / "demo.yaml",
            "clive-dev": REPO / "configs" / "clive.yaml"}
BUDGETS = (0.0, 0.1)


def smoke_dataset(folder: Path) -> tuple[Path, Path, Path]:
    """24 synthetic images (blur = low quality), a recorded teacher and a tiny random ConvNeXt
    saved as a local folder: (data CSV, teacher file, backbone folder)."""
    from PIL import Image, ImageFilter
    from transformers import ConvNextConfig, ConvNextModel

    rng = np.random.default_rng(0)
    lines, records = ["name,mos,split"], []
    for i in range(24):
        pixels = rng.integers(0, 256, size=(80, 80, 3), dtype=np.uint8)
        blur = (i % 6) * 0.8
        Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(blur)).save(folder / f"{i}.jpg")
        lines.append(f"{i}.jpg,{5 - blur:.2f},{'test' if i % 4 == 0 else 'train'}")
        records.append({"img_path": f"{i}.jpg", "logit_good": 2 - blur, "logit_poor": 0})
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    (folder / "teacher.json").write_text("".join(json.dumps(r) for r in records))
    torch.manual_seed(0)
    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
                  ).save_pretrained(folder / "tiny-convnext")
    return folder / "data.csv", folder / "teacher.json", folder / "tiny-convnext"


def measure(name: str, config: RunConfig) -> list[dict]:
    """LEAF with frozen features and with the fully tuned backbone, at each budget."""
    ws = prepare(config, progress=False)
    train_mos, mos_test = ws.mos[ws.train_rows], ws.mos[ws.test_rows]
    rows = []
    start = time.time()
    tuned, _ = tune_backbone(ws, progress=False)
    tuning = time.time() - start
    # the same labels for both students: chosen in the frozen features (as `leaf run` does)
    embedding = (embed(ws.features[ws.train_rows])
                 if config.labels.selection in ("kcenter", "variance") else None)
    for student, workspace, seconds in (("frozen", ws, 0.0), ("fine-tuned", tuned, tuning)):
        for budget in BUDGETS:
            n = label_count(budget, labelled_rows(train_mos).size)
            labels = select_among_labelled(train_mos, n, strategy=config.labels.selection,
                                           teacher_scores=ws.teacher_scores[ws.train_rows],
                                           seed=config.labels.seed, embedding=embedding)
            result = run_leaf(workspace, labels, config.distill.seed)
            metrics = evaluate(result.predictions, mos_test, n >= 2)
            rows.append({"dataset": name, "student": student, "labels": n,
                         "srcc": metrics["srcc"], "plcc": metrics["plcc"],
                         "tuning_s": seconds, "train_images": int(ws.train_rows.size)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU-sized check of the path")
    parser.add_argument("--backbone", default=None, help="student.backbone (default: the "
                        "configs' efficientnet-lite0; hf:FOLDER for a local HF model)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sizes", default=None, help="input sizes, e.g. 224+512 (default: the "
                        "configs')")
    parser.add_argument("--out", default=str(REPO / "runs" / "gpu_check"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = training_device()
    overrides: dict = {"student.finetune": "full", "student.tail_epochs": args.epochs}
    if args.backbone:
        overrides["student.backbone"] = args.backbone
    if args.sizes:
        overrides["student.input_size"] = [int(s) for s in args.sizes.split("+")]
    started = time.time()
    rows: list[dict] = []
    if args.smoke:
        folder = Path(tempfile.mkdtemp(prefix="gpu-check-smoke-", dir=out))
        csv, teacher, backbone = smoke_dataset(folder)
        (folder / "smoke.yaml").write_text(json.dumps({
            "data": {"kind": "csv", "path": str(csv), "split": "split"},
            "teacher": {"spec": f"qbench:{teacher}", "pairs_per_image": 2},
            "student": {"backbone": f"hf:{backbone}", "input_size": 64},
            "labels": {"budget": 0.1}}))
        smoke = {**overrides, "student.tail_epochs": 1, "output": str(folder / "run"),
                 "cache": str(folder / "cache")}
        rows += measure("synthetic (smoke)", load_config(folder / "smoke.yaml", smoke))
    else:
        for name, path in DATASETS.items():
            rows += measure(name, load_config(path, {**overrides,
                                                     "output": str(out / name.lower())}))
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    print(f"\ndevice: {device.type} ({gpu}), mixed precision: {autocast_dtype(device)}, "
          f"epochs: {1 if args.smoke else args.epochs}, total {time.time() - started:.0f} s")
    print(f"{'dataset':<20} {'student':<11} {'labels':>6} {'SRCC':>7} {'PLCC':>7} "
          f"{'tuning s':>9}")
    for row in rows:
        print(f"{row['dataset']:<20} {row['student']:<11} {row['labels']:>6} "
              f"{row['srcc']:>7.4f} {row['plcc']:>7.4f} {row['tuning_s']:>9.1f}")
    (out / "gpu_check.json").write_text(json.dumps({"device": device.type, "gpu": gpu,
                                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
