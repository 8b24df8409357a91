"""The stage-by-stage Python API behind ``leaf distill`` and ``leaf calibrate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leafiqa.calibration.estimate import (
    AccuracyEstimate,
    LearningCurve,
    estimate_accuracy,
    learning_curve,
)
from leafiqa.calibration.prior import PoolSample, calibrate_prior, sample_pool_rows
from leafiqa.data.manifest import DataError, Manifest
from leafiqa.data.splits import labelled_rows, select_among_labelled
from leafiqa.defaults import cache_folder
from leafiqa.errors import ConfigError
from leafiqa.judgments.runner import hash_manifest
from leafiqa.judgments.store import JudgmentStore
from leafiqa.labelling.designs import embed, representation_weights
from leafiqa.model.file import (
    LeafNetwork,
    ModelInfo,
    load_network,
    model_info,
    save_model,
    trained_digests,
)
from leafiqa.student.backbone import build_backbone
from leafiqa.student.distill import DistillConfig, TeacherTargets, build_targets, distill_head
from leafiqa.student.features import DEFAULT_INPUT_SIZE, FeatureExtractor
from leafiqa.student.ridge import FeatureScaler, RidgeBasis, feature_priors


def training_images(manifest: Manifest) -> Manifest:
    """The train split when the manifest has one, else every image."""
    if any(item.split for item in manifest):
        return manifest.split("train")
    return manifest


def _only_teacher(store: JudgmentStore, teacher_id: str | None) -> str:
    teachers = store.teachers()
    if teacher_id:
        if not any(t == teacher_id for t, *_ in teachers):
            raise DataError(f"{store.path}: no judgments by teacher '{teacher_id}'; found "
                            f"{[t for t, *_ in teachers]}")
        return teacher_id
    ids = sorted({t for t, *_ in teachers})
    if len(ids) != 1:
        raise DataError(f"{store.path}: holds judgments of {ids or 'no teacher'}; "
                        "choose one with --teacher-id")
    return ids[0]


def stored_targets(store_path: Path, teacher_id: str | None, keys: list[str]) -> TeacherTargets:
    with JudgmentStore(store_path) as store:
        teacher_id = _only_teacher(store, teacher_id)
        points = store.points(teacher_id, keys=keys)
        pairs = store.pairs(teacher_id, keys=keys)
    if not points:
        raise DataError(f"{store_path}: teacher '{teacher_id}' judged none of these images; "
                        "run `leaf teach` first")
    return build_targets(keys, points, pairs)


def distill_from_store(
    manifest: Manifest,
    store_path: str | Path,
    out: str | Path,
    *,
    teacher_id: str | None = None,
    backbone: str = "efficientnet-lite0",
    input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    point_weight: float = 1.0,
    pair_weight: float = 1.0,
    use_reliability: bool = True,
) -> Path:
    images = training_images(manifest)
    keys = hash_manifest(images)
    targets = stored_targets(Path(store_path), teacher_id, keys)
    config = DistillConfig(point_weight=point_weight, pair_weight=pair_weight,
                           use_reliability=use_reliability)
    extractor = FeatureExtractor(backbone, input_size, cache_folder(cache_dir))
    extractor.fill(images, keys)
    features = extractor.source(keys)  # read chunk by chunk: a pool of any size
    head = distill_head(features, targets, config,
                        FeatureScaler.fit_source(features, extractor.blocks))
    network = LeafNetwork.calibrated(build_backbone(backbone), head)
    info = model_info(backbone=backbone, input_sizes=input_size, head=head,
                      teacher_ids=targets.teacher_ids, manifest_hash=images.fingerprint(),
                      notes={"stage": "distilled",
                             **({"distill": head.fit.to_dict()} if head.fit else {})},
                      provenance={"labels_file": manifest.source,
                                  "seeds": {"distill": config.seed}},
                      trained_on=keys, labelled_on=[])
    return save_model(out, network, info)


def trained_with(info: ModelInfo, keys: list[str]) -> list[str] | None:
    """The training record of a model calibrated on the images ``keys``: the images that
    trained it before, and these; None when the earlier ones are not known."""
    before = trained_digests(info)
    return None if before is None else [*(d.hex() for d in before), *keys]


@dataclass
class Calibrated:
    """A model file's student calibrated on labels: the network to save, its card, and what
    the labels say of it (the accuracy estimate and what more labels would add)."""

    network: LeafNetwork
    info: ModelInfo
    expected: AccuracyEstimate | None
    curve: LearningCurve | None


def calibrate_model(
    model_path: str | Path,
    manifest: Manifest,
    *,
    out: str | Path | None = None,
    **options: object,
) -> Path:
    """Calibrate a model file on MOS labels (``calibrate``) and save it to ``out`` (default:
    ``<model>-calibrated.safetensors`` beside it)."""
    calibrated = calibrate(model_path, manifest, **options)  # type: ignore[arg-type]
    out = Path(out) if out else Path(model_path).with_name(
        Path(model_path).stem + "-calibrated.safetensors")
    return save_model(out, calibrated.network, calibrated.info)


def calibrate(
    model_path: str | Path,
    manifest: Manifest,
    *,
    budget: float = 0.1,
    selection: str = "random",
    seed: int = 0,
    store: str | Path | None = None,
    teacher_id: str | None = None,
    cache_dir: str | Path | None = None,
    target: str = "new",
    next_labels: int | None = None,
) -> Calibrated:
    """Calibrate a model file on MOS labels: its student score mapped onto the MOS scale plus
    the labels' correction on the features (``calibration.prior``). The accuracy estimate
    speaks for ``target``: "pool" (the images of ``manifest`` left unlabelled) or "new"; with
    ``next_labels``, the model file also records what that many more labels are expected to add
    (``calibration.estimate.learning_curve``)."""
    from leafiqa.experiments.workspace import label_count

    network, info = load_network(model_path)
    pool = training_images(manifest)
    # images without a MOS stay in the pool (the teacher's term of the loss reads them) but are
    # never drawn as labels
    pool_mos = np.array([np.nan if item.mos is None else item.mos for item in pool])
    if not labelled_rows(pool_mos).size:
        raise DataError(f"{pool.source}: no training image has a MOS to calibrate on")
    keys = hash_manifest(pool)
    # an HF backbone is rebuilt from the model file (its recorded spec keys the cache); a
    # fine-tuned one's features are its own, never the cache's
    tuned = info.notes.get("finetune", "none") not in ("none", None)
    extractor = FeatureExtractor(
        info.backbone, info.input_sizes, None if tuned else cache_folder(cache_dir),
        network=network.backbone if tuned or info.backbone_spec else None)
    extractor.fill(pool, keys)
    features = extractor.source(keys)  # read chunk by chunk: a pool of any size
    targets = stored_targets(Path(store), teacher_id, keys) if store else None
    teacher_scores = None
    if selection != "random":
        if targets is None:
            raise ConfigError(f"label selection '{selection}' needs the teacher's judgments "
                              "(--store)")
        teacher_scores = np.full(len(keys), np.nan)
        teacher_scores[targets.point_index] = targets.point_target
    n_labels = label_count(budget, labelled_rows(pool_mos).size)
    embedding = embed(features) if selection in ("kcenter", "variance") else None
    rows = select_among_labelled(pool_mos, n_labels, strategy=selection,
                                 teacher_scores=teacher_scores, seed=seed, embedding=embedding)
    mos = pool_mos[rows]
    head = network.head
    scores = features.map(head.predict)
    scalers = feature_priors(features, extractor.blocks)
    labelled = features.take(rows)
    bases = [RidgeBasis.fit(labelled, scaler) for scaler in scalers]
    sample = sample_pool_rows(len(keys))
    pool_sample = PoolSample(scores[sample], features.take(sample))
    calibration = calibrate_prior(scores[rows], bases, mos, pool=pool_sample)
    weights = representation_weights(embedding, rows) if embedding is not None else None
    # labels from a few raters: their noise (``leaf ratings export``'s se), corrected for
    errors = np.array([np.nan if pool[row].se is None else pool[row].se for row in rows])
    noise = errors**2 if np.isfinite(errors).any() else None
    expected = estimate_accuracy(scores[rows], labelled, scalers, mos, weights=weights,
                                 seed=seed, pool=pool_sample, target=target, label_noise=noise)
    curve = None
    if expected is not None and next_labels:
        curve = learning_curve(scores[rows], labelled, scalers, mos, expected, next_labels,
                               weights=weights, seed=seed, pool=pool_sample,
                               label_noise=noise)
    calibrated = LeafNetwork.calibrated(network.backbone, head, calibration)
    info = model_info(backbone=info.backbone, input_sizes=info.input_sizes, head=head,
                      calibration=calibration, labelled_mos=mos, teacher_ids=info.teacher_ids,
                      manifest_hash=info.manifest_hash,
                      notes={**info.notes, "stage": "calibrated", "labels": int(n_labels),
                             "selection": selection,
                             "correction_alpha": calibration.correction_alpha,
                             "correction_form": calibration.form,
                             "correction_prior": calibration.prior,
                             "correction_reason": calibration.reason,
                             **({"expected_accuracy": expected.to_dict()} if expected else {}),
                             **({"learning_curve": curve.to_dict()} if curve else {})},
                      provenance={"labels_file": manifest.source, "seeds": {"labels": seed}},
                      trained_on=trained_with(info, keys),
                      labelled_on=[keys[row] for row in rows])
    return Calibrated(calibrated, info, expected, curve)
