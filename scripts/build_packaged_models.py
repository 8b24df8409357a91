#!/usr/bin/env python
"""Build the packaged models (the separate distribution ``packages/leaf-iqa-models``, package
``leafiqa_models``, installed by ``leaf-iqa[models]``) — the only source of those files: for
each model, ``leaf run CONFIG`` from the shared data, then the calibrated student is copied into
that package with its card (training data, teacher, labels, MOS scale, test metrics of the
shipped file itself, licence terms) and provenance; the models README is written from the
cards. Run from the repository root (``make models``)::

    python scripts/build_packaged_models.py [--only leaf-clive] [--work runs/packaged-models]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from leafiqa.config import load_config, run_provenance
from leafiqa.data.manifest import Manifest
from leafiqa.data.readers import read_dataset
from leafiqa.evaluation.metrics import evaluate
from leafiqa.model.file import load_network, save_model
from leafiqa.model.registry import PACKAGED_NAMES
from leafiqa.model.scorer import Scorer
from leafiqa.version import git_commit

ROOT = Path(__file__).resolve().parent.parent
# the models' source folder in this repository (not an installed copy)
PACKAGED_DIR = ROOT / "packages" / "leaf-iqa-models" / "src" / "leafiqa_models"
AGIQA_VALID_FOR = ("Images from text-to-image generators. Not for camera photos: there it "
                   "ranks far worse than leaf-clive (see `elsewhere`).")
QBENCH_LICENCE = ("Teacher judgments: Q-Bench's published outputs of InternLM-XComposer-VL, under "
                  "the S-Lab License 1.0 (non-commercial use; licences/LICENSE-Q-Bench).")


@dataclass(frozen=True)
class PackagedModel:
    name: str
    config: str
    title: str
    domain: str
    training_data: str
    mos_scale: dict
    licence: str
    notices: tuple[str, ...]  # files beside the data that must travel with the model
    valid_for: str  # where the model's scores can be trusted, in a user's words
    elsewhere: tuple[tuple[str, str], ...]  # (what, config): other images it is measured on


MODELS = (
    PackagedModel(
        name="leaf-agiqa3k",
        config="configs/model-agiqa3k.yaml",
        title="AI-generated images",
        domain="text-to-image outputs (AttnGAN, DALL-E 2, GLIDE, Midjourney, SD 1.5, SDXL)",
        training_data="AGIQA-3K (Li et al., IEEE TCSVT 2023), split_1 training images",
        mos_scale={"name": "AGIQA-3K perceptual-quality MOS", "range": [0.0, 5.0],
                   "higher_better": True},
        licence="Research use only: trained on AGIQA-3K (released for research use). "
                + QBENCH_LICENCE,
        notices=("agiqa3k/mllm-judgments/LICENSE-Q-Bench",),
        valid_for=AGIQA_VALID_FOR,
        elsewhere=(("camera photos (clive-dev, every image)", "configs/model-clive.yaml"),),
    ),
    PackagedModel(
        name="leaf-agiqa3k-10pct",
        config="configs/model-agiqa3k-10pct.yaml",
        title="AI-generated images, 10 % of the labels",
        domain="text-to-image outputs (AttnGAN, DALL-E 2, GLIDE, Midjourney, SD 1.5, SDXL)",
        training_data="AGIQA-3K (Li et al., IEEE TCSVT 2023), split_1 training images",
        mos_scale={"name": "AGIQA-3K perceptual-quality MOS", "range": [0.0, 5.0],
                   "higher_better": True},
        licence="Research use only: trained on AGIQA-3K (released for research use). "
                + QBENCH_LICENCE,
        notices=("agiqa3k/mllm-judgments/LICENSE-Q-Bench",),
        valid_for=AGIQA_VALID_FOR + " The label-efficient regime: the same student as "
                  "leaf-agiqa3k, calibrated on 10 % of its training MOS (drawn at random).",
        elsewhere=(("camera photos (clive-dev, every image)", "configs/model-clive.yaml"),),
    ),
    PackagedModel(
        name="leaf-clive",
        config="configs/model-clive.yaml",
        title="camera photos",
        domain="authentic photos from mobile cameras (blur, noise, exposure, compression)",
        training_data="LIVE In the Wild Image Quality Challenge, development part (542 images; "
                      "Ghadiyaram and Bovik, IEEE TIP 2016), split_1 training images",
        mos_scale={"name": "LIVE Challenge MOS", "range": [0.0, 100.0], "higher_better": True},
        licence="Non-commercial use (the teacher's terms). " + QBENCH_LICENCE + " Trained on "
                "the LIVE In the Wild "
                "Challenge database, Copyright (c) 2015 The University of Texas at Austin; its "
                "notice travels with this model (licences/README-LIVE-Challenge.txt).",
        notices=("agiqa3k/mllm-judgments/LICENSE-Q-Bench",
                 "clive-dev/README-LIVE-Challenge.txt"),
        valid_for="Photos from phones and consumer cameras with authentic distortions (blur, "
                  "noise, exposure, compression). Not for AI-generated images: it ranks them "
                  "far worse than leaf-agiqa3k does (see `elsewhere`).",
        elsewhere=(("AI-generated images (AGIQA-3K, every image)", "configs/model-agiqa3k.yaml"),),
    ),
)


def train(spec: PackagedModel, work: Path, cache: Path) -> Path:
    """``leaf run`` the model's config into ``work/<name>``; returns its output folder."""
    output = work / spec.name
    command = [sys.executable, "-m", "leafiqa", "run", spec.config, "--quiet",
               "--set", f"output={output}", "--set", f"cache={cache}"]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return output


def measure(model: Path, manifest: Manifest, split: str) -> dict:
    """SRCC/KRCC/PLCC/RMSE of the shipped file itself on the images of ``manifest``."""
    scores = Scorer(model, runtime="torch").score_paths([i.path for i in manifest])
    metrics = evaluate(scores, np.array(manifest.mos_array()))
    return {"split": split, **{k: round(float(v), 4) if k != "n" else v
                               for k, v in metrics.items()}}


def config_manifest(config_path: str) -> tuple[Manifest, str]:
    config = load_config(ROOT / config_path)
    manifest = read_dataset(config.data.kind, ROOT / config.data.path, split=config.data.split)
    return manifest, config.data.split or "split_1"


def test_metrics(model: Path, spec: PackagedModel) -> dict:
    """The shipped file on its own data set's test split."""
    manifest, split = config_manifest(spec.config)
    return measure(model, manifest.split("test"), f"{split} test")


def elsewhere_metrics(model: Path, spec: PackagedModel) -> dict:
    """The shipped file on every image of another domain (none of which trained it): what a
    user who scores the wrong kind of image gets."""
    return {what: measure(model, config_manifest(config)[0], "all images")
            for what, config in spec.elsewhere}


def package(spec: PackagedModel, output: Path, shared: Path, commit: str | None) -> dict:
    """``commit``: the source tree's, read before the build wrote any model (a later read would
    count the models this build already replaced as local edits)."""
    results = json.loads((output / "results.json").read_text())
    network, info = load_network(output / "leaf-model.safetensors")
    config = load_config(ROOT / spec.config)
    card = {
        "name": spec.name,
        "title": spec.title,
        "domain": spec.domain,
        "training_data": f"{spec.training_data} ({results['n_train']} images)",
        "teacher": results["teacher"],
        "labels": results["n_labels"],
        "mos_scale": spec.mos_scale,
        "licence": spec.licence,
        "student": results["student"],
        "weights": "backbone float16, head and calibration float32",
        "config": spec.config,
        "valid_for": spec.valid_for,
    }
    packaged = PACKAGED_DIR / f"{spec.name}.safetensors"
    # the metadata `leaf run` built (``modelfile.model_info``), with the card added
    shipped = replace(info, card=card, created="",
                      provenance={**run_provenance(config), "git_commit": commit})
    save_model(packaged, network, shipped, half_backbone=True)
    card["test"] = test_metrics(packaged, spec)  # of the shipped (float16) file itself
    card["elsewhere"] = elsewhere_metrics(packaged, spec)
    save_model(packaged, network, shipped, half_backbone=True)  # `shipped` holds `card`
    packaged.chmod(0o644)  # safetensors writes 0600; an installed package must be readable
    licences = PACKAGED_DIR / "licences"
    licences.mkdir(exist_ok=True)
    for notice in spec.notices:
        shutil.copyfile(shared / notice, licences / Path(notice).name)
    print(f"{spec.name}: {packaged} ({packaged.stat().st_size / 2**20:.1f} MiB), test "
          f"{card['test']}", flush=True)
    return card


def write_readme(cards: list[dict]) -> Path:
    lines = [
        "# Models shipped with LEAF",
        "",
        "Written by `scripts/build_packaged_models.py` (`make models`); do not edit by hand.",
        "Create one with `leafiqa.create_metric(NAME)` or `leaf score NAME images/`;",
        "`leaf models` lists them and `leaf info NAME` prints a model's card.",
        "",
        "| name | for | scale (higher is better) | labels | teacher | test SRCC | test PLCC |",
        "|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        low, high = card["mos_scale"]["range"]
        test = card["test"]
        lines.append(f"| `{card['name']}` | {card['title']} | {card['mos_scale']['name']}, "
                     f"{low:g}–{high:g} | {card['labels']} | {card['teacher']} | "
                     f"{test['srcc']:.3f} | {test['plcc']:.3f} |")
    for card in cards:
        test = card["test"]
        lines += [
            "", f"## `{card['name']}` — {card['title']}", "",
            f"- Images: {card['domain']}",
            f"- Trained on: {card['training_data']}",
            f"- Teacher: {card['teacher']}; MOS labels: {card['labels']}",
            f"- Student: {card['student']}; {card['weights']}",
            f"- Test ({test['split']}, n={test['n']}): SRCC {test['srcc']:.3f}, "
            f"KRCC {test['krcc']:.3f}, PLCC {test['plcc']:.3f}, RMSE {test['rmse']:.3f}",
            f"- Valid for: {card['valid_for']}",
            *[f"- Elsewhere — {what} ({m['split']}, n={m['n']}): SRCC {m['srcc']:.3f}, "
              f"PLCC {m['plcc']:.3f}" for what, m in card["elsewhere"].items()],
            f"- Built from: `{card['config']}`",
            f"- Licence: {card['licence']}",
        ]
    lines += ["", "The code is Apache-2.0; these model files are bound by the terms above "
              "(the notices are in `licences/`).", ""]
    readme = PACKAGED_DIR / "README.md"
    readme.write_text("\n".join(lines))
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "packaged-models",
                        help="where the runs go")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache",
                        help="feature cache (the clone's, as the repository's configs use)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--only", action="append", help="build only this model (repeatable)")
    args = parser.parse_args()
    if sorted(spec.name for spec in MODELS) != sorted(PACKAGED_NAMES):
        sys.exit(f"leafiqa.model.registry.PACKAGED_NAMES {PACKAGED_NAMES} must name exactly the "
                 f"models built here ({[spec.name for spec in MODELS]})")
    started = time.time()
    commit = git_commit()
    cards = []
    for spec in MODELS:
        if args.only and spec.name not in args.only:
            existing = PACKAGED_DIR / f"{spec.name}.safetensors"
            if existing.is_file():
                from leafiqa.model.file import read_info

                cards.append(read_info(existing).card)
            continue
        cards.append(package(spec, train(spec, args.work.resolve(), args.cache.resolve()),
                             args.shared, commit))
    print(f"wrote {write_readme(cards)} in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
