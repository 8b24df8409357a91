"""The LEAF pipeline, stage by stage: data → teacher judgments → distillation → calibration →
evaluation → model file. ``leaf run`` and the Python API both go through here; the stages live
in their packages, the shared inputs in ``workspace``, the compared methods in ``methods``."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from leafiqa.config import RunConfig, config_to_dict, run_provenance
from leafiqa.data.images import as_sizes
from leafiqa.data.splits import labelled_rows
from leafiqa.evaluation.metrics import evaluate
from leafiqa.experiments.methods import (
    MethodResult,
    run_labels_only,
    run_leaf,
    run_teacher_alone,
)
from leafiqa.experiments.workspace import Workspace, label_count, prepare, stage
from leafiqa.labelling.designs import embed, representation_weights, select_among_labelled
from leafiqa.model.file import LeafNetwork, model_info, save_model
from leafiqa.student.backbone import build_backbone
from leafiqa.student.ridge import FeatureSource


def build_network(ws: Workspace, result: MethodResult,
                  backbone: Any = None) -> LeafNetwork:
    assert result.head is not None
    backbone = backbone or build_backbone(ws.config.student.backbone, pretrained=True)
    return LeafNetwork.calibrated(backbone, result.head, result.calibration)


def tune_backbone(ws: Workspace, progress: bool = True
                  ) -> tuple[Workspace, Any]:
    """``student.finetune``: train the backbone's last blocks (``tail``) or every layer
    (``full``) with an MLP head on the teacher's joint point + pair loss over the training
    images (on CUDA when there is one). Returns the workspace with every image's features
    recomputed by the tuned backbone — LEAF then distils its head on those as usual — and the
    tuned backbone. ``full`` and any HF backbone read the images through a DataLoader each
    epoch (bfloat16 on CUDA); an EfficientNet's ``tail`` caches its frozen front once."""
    import torch

    from leafiqa.student.distill import distill_head
    from leafiqa.student.hf_backbone import HFBackbone
    from leafiqa.student.tail_tuning import (
        TailConfig,
        cache_front,
        image_features,
        tail_features_batched,
        tune_on_images,
        tune_tail,
    )

    student = ws.config.student
    # a head with gradients all through: the backbone learns through it
    joint = dataclasses.replace(ws.config.distill, head="mlp")
    targets = ws.targets(ws.train_rows)
    head = distill_head(ws.rows_features(ws.train_rows), targets, joint)  # the MLP: in memory
    backbone = build_backbone(student.backbone, pretrained=True).eval()
    blocks = backbone.block_count + 1 if student.finetune == "full" else student.unfreeze_blocks
    tail = TailConfig(blocks=blocks, epochs=student.tail_epochs, lr=student.tail_lr,
                      seed=ws.config.distill.seed)
    if student.finetune == "full" or isinstance(backbone, HFBackbone):
        paths = [i.path for i in ws.manifest]
        backbone, _ = tune_on_images(backbone, head, [paths[i] for i in ws.train_rows],
                                     student.input_size, targets, tail, joint, progress)
        features = image_features(backbone, paths, student.input_size, progress=progress)
        return _with_features(ws, features.numpy()), backbone.cpu().eval()
    cut = backbone.block_count - blocks
    # the frozen front (nothing for "full") runs once for every image; tuning uses train rows
    front = cache_front(backbone, [i.path for i in ws.manifest], student.input_size, cut,
                        progress)
    backbone, _ = tune_tail(backbone, head, front.rows(torch.as_tensor(ws.train_rows)), targets,
                            tail, joint, progress=progress)
    tuned = tail_features_batched(backbone, front, cut).numpy()
    return _with_features(ws, tuned), backbone


def _with_features(ws: Workspace, features: np.ndarray) -> Workspace:
    """``ws`` with the tuned backbone's features, computed in memory (``student.finetune``)."""
    tuned = dataclasses.replace(ws, feature_source=FeatureSource.of(features))
    tuned.__dict__["features"] = features
    return tuned


def save_student(ws: Workspace, result: MethodResult, path: Path,
                 label_rows: np.ndarray, backbone: Any = None) -> Path:
    assert result.head is not None
    labelled_mos = ws.mos[ws.train_rows[label_rows]] if label_rows.size else np.zeros(0)
    train_manifest = ws.manifest.subset([ws.manifest[i] for i in ws.train_rows], "train")
    calibration = result.calibration
    info = model_info(
        backbone=ws.config.student.backbone,
        input_sizes=ws.config.student.input_size,
        head=result.head,
        calibration=calibration,
        labelled_mos=labelled_mos,
        teacher_ids=sorted({p.teacher_id for p in ws.teacher.points.values()}),
        manifest_hash=train_manifest.fingerprint(),
        notes={"teacher": ws.teacher.name, "labels": int(label_rows.size),
               "dataset": ws.manifest.source, "finetune": ws.config.student.finetune,
               "correction_alpha": calibration.correction_alpha,
               "correction_form": calibration.form, "correction_prior": calibration.prior,
               "correction_reason": calibration.reason,
               **({"expected_accuracy": result.estimate.to_dict()} if result.estimate else {})},
        provenance=run_provenance(ws.config),
        trained_on=[ws.keys[i] for i in ws.train_rows],
        labelled_on=[ws.keys[i] for i in ws.train_rows[label_rows]],
    )
    return save_model(path, build_network(ws, result, backbone), info)


def run_pipeline(config: RunConfig, progress: bool = True) -> dict:
    """``leaf run``: the whole pipeline with the configured label budget, plus the two
    baselines on the same labels. Writes the model file, results.json and a scatter plot."""
    started = time.time()
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    ws = prepare(config, progress)
    train_mos = ws.mos[ws.train_rows]
    # images without a MOS are the unlabeled pool: judged and distilled from, never labels
    n_labels = label_count(config.labels.budget, labelled_rows(train_mos).size)
    selection = config.labels.selection
    embedding = embed(ws.train_source) if selection in ("kcenter", "variance") else None
    label_rows = select_among_labelled(train_mos, n_labels, strategy=selection,
                                       teacher_scores=ws.teacher_scores[ws.train_rows],
                                       seed=config.labels.seed, embedding=embedding)
    weights = (representation_weights(embedding, label_rows)
               if embedding is not None and label_rows.size else None)
    tuned_backbone = None
    leaf_ws = ws
    if config.student.finetune != "none":
        leaf_ws, tuned_backbone = tune_backbone(ws, progress)
    times = ws.stage_seconds
    with stage(times, "distil + calibrate", progress):
        results = [run_leaf(leaf_ws, label_rows, config.distill.seed, estimate=True,
                            weights=weights)]
    expected = results[0].estimate
    mos_test = ws.mos[ws.test_rows]
    evaluable = ws.test_rows.size >= 3 and not np.isnan(mos_test).any()
    with stage(times, "baselines", progress):
        if evaluable:
            if n_labels >= 2:
                results.append(run_labels_only(ws, label_rows, config.distill.seed))
            results.append(run_teacher_alone(ws, label_rows))
    calibrated = n_labels >= 2
    metrics = {r.method: evaluate(r.predictions, mos_test, calibrated)
               for r in results} if evaluable else {}
    with stage(times, "model file", progress):
        model_path = save_student(leaf_ws, results[0], output / "leaf-model.safetensors",
                                  label_rows, tuned_backbone)
    plot = None
    if evaluable:
        from leafiqa.evaluation.plots import scatter_plot

        plot = scatter_plot(results[0].predictions, mos_test, output / "scatter.png",
                            title=f"LEAF, {n_labels} labels — {ws.teacher.name}")
    summary = {
        "teacher": ws.teacher.name,
        "teacher_weights": [dataclasses.asdict(w) for w in ws.teacher.weights],
        "student": f"{ws.config.student.backbone} at "
                   + "+".join(str(size) for size in as_sizes(ws.config.student.input_size))
                   + " px" + ("" if config.student.finetune == "none"
                              else f", fine-tuned ({config.student.finetune})"),
        "dataset": ws.manifest.source,
        "n_train": int(ws.train_rows.size),
        "n_test": int(ws.test_rows.size),
        "n_labels": n_labels,
        "label_selection": config.labels.selection,
        "calibration": {"line": results[0].calibration.line.to_dict(),
                        "correction_alpha": results[0].calibration.correction_alpha,
                        "form": results[0].calibration.form,
                        "prior": results[0].calibration.prior,
                        "output_map": results[0].calibration.output_map.to_dict()},
        "metrics": metrics,
        # expected on new images, estimated from the labels alone (calibration.estimate)
        "expected_accuracy": expected.to_dict() if expected else None,
        "model": str(model_path),
        "scatter_plot": str(plot) if plot else None,
        "teach_reports": [r.summary() for r in ws.teacher.reports],
        "seconds": round(time.time() - started, 1),
        "stage_seconds": times,
        "config": config_to_dict(config),
        "provenance": run_provenance(config),
    }
    (output / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def format_results(summary: dict) -> str:
    lines = [
        f"teacher: {summary['teacher']}",
        f"student: {summary['student']}",
        f"data: {summary['dataset']} — {summary['n_train']} train / {summary['n_test']} test, "
        f"{summary['n_labels']} MOS labels ({summary['label_selection']})",
    ]
    if summary.get("teacher_weights"):
        lines.append("teacher weights: " + ", ".join(
            f"{w['teacher_id'].split(':')[-1]} {w['weight']:.2f}"
            for w in sorted(summary["teacher_weights"], key=lambda w: -w["weight"])))
    lines += [
        "",
        f"{'method':<28} {'SRCC':>7} {'KRCC':>7} {'PLCC':>7} {'PLCC*':>7} {'RMSE':>7}",
    ]
    if not summary["metrics"]:
        lines.append("(no test images with MOS: nothing to evaluate; the model is saved)")
    for method, m in summary["metrics"].items():
        lines.append(f"{method:<28} {m['srcc']:7.4f} {m['krcc']:7.4f} {m['plcc']:7.4f} "
                     f"{m['plcc_fitted']:7.4f} {m['rmse']:7.4f}")
    if summary.get("expected_accuracy"):
        lines += ["", format_expected(summary["expected_accuracy"])]
    lines += [
        "",
        "PLCC: predictions as calibrated on the training labels; PLCC*: after a 4-parameter "
        "logistic fitted on the test set (VQEG convention).",
        f"model: {summary['model']}   plot: {summary['scatter_plot'] or '—'}   "
        f"time: {summary['seconds']} s",
    ]
    if summary.get("stage_seconds"):
        lines.append("stages: " + " · ".join(f"{name} {seconds:.1f} s" for name, seconds
                                             in summary["stage_seconds"].items()))
    return "\n".join(lines)


def format_expected(expected: dict) -> str:
    """The accuracy estimated from the labels alone, as one line (``AccuracyEstimate``)."""
    from leafiqa.calibration.estimate import AccuracyEstimate

    return "LEAF " + AccuracyEstimate(**expected).summary()
