"""The LEAF pipeline, stage by stage: data → teacher judgments → distillation → calibration →
evaluation → model file. ``leaf run`` and the Python API both go through here."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafiqa.calibration.finetune import finetune_head, train_on_labels
from leafiqa.calibration.mapping import ScoreMap, fit_score_map
from leafiqa.calibration.selection import select_labels
from leafiqa.config import RunConfig, config_to_dict
from leafiqa.data.images import as_sizes
from leafiqa.data.manifest import Manifest
from leafiqa.data.readers import read_dataset
from leafiqa.deploy.modelfile import LeafNetwork, ModelInfo, save_model
from leafiqa.evaluation.metrics import evaluate
from leafiqa.judgments.ensemble import (
    ensemble_id,
    ensemble_pairs,
    ensemble_points,
    merge_with_fallback,
)
from leafiqa.judgments.pairs import select_pairs
from leafiqa.judgments.runner import TeachReport, hash_manifest, teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.distill import DistillConfig, TeacherTargets, build_targets, distill_head
from leafiqa.student.features import FeatureExtractor, set_cpu_threads
from leafiqa.student.head import QualityHead
from leafiqa.teachers.protocol import PairJudgment, PointJudgment
from leafiqa.teachers.registry import make_teacher

log = logging.getLogger(__name__)


def load_manifest(config: RunConfig) -> Manifest:
    options: dict[str, object] = {}
    if config.data.kind == "agiqa3k":
        options["split"] = config.data.split
    manifest = read_dataset(config.data.kind, config.data.path, **options)
    if config.data.limit:
        manifest = manifest.spread(int(config.data.limit))
    return manifest


@dataclass
class TeacherView:
    """A teacher's judgments as the student sees them (after fallback merging or ensembling)."""

    name: str
    points: dict[str, PointJudgment]
    pairs: list[PairJudgment]
    reports: list[TeachReport] = field(default_factory=list)


def gather_judgments(
    config: RunConfig,
    manifest: Manifest,
    keys: list[str],
    pair_rows: np.ndarray,
    store: JudgmentStore,
    progress: bool = True,
) -> TeacherView:
    """Run (or resume) the configured teacher(s) and read their judgments back from the store.

    Point-wise judgments cover every image (the teacher-alone baseline needs the test images
    too); pairs are planned among ``pair_rows`` only (the images the student distils from)."""
    tcfg = config.teacher
    pair_manifest = manifest.subset([manifest[i] for i in pair_rows], "pairs")
    specs = tcfg.ensemble or [tcfg.spec]
    reports: list[TeachReport] = []
    member_points: dict[str, dict[str, PointJudgment]] = {}
    primary_pairs: list[PairJudgment] = []
    for index, spec in enumerate(specs):
        teacher = make_teacher(spec, **tcfg.options)
        try:
            reports.append(teach(teacher, manifest, store, max_requests=tcfg.max_requests,
                                 progress=progress))
            if not tcfg.ensemble:
                reports.append(teach(teacher, pair_manifest, store,
                                     pairs_per_image=tcfg.pairs_per_image,
                                     max_requests=tcfg.max_requests, progress=progress))
        finally:
            teacher.close()
        member_points[teacher.teacher_id] = store.points(teacher.teacher_id,
                                                         teacher.prompt_version, keys)
        if index == 0 and not tcfg.ensemble:
            # only this run's planned pairs: a store shared by runs on other splits holds more
            planned = set(reports[-1].planned_pairs)
            primary_pairs = [p for p in store.pairs(teacher.teacher_id, teacher.prompt_version)
                             if (p.key_a, p.key_b) in planned]
    if tcfg.ensemble:
        name = ensemble_id(list(member_points))
        points = ensemble_points(member_points, keys)
        pair_keys = [keys[i] for i in pair_rows if keys[i] in points]
        planned = select_pairs(pair_keys, {k: points[k].score for k in pair_keys},
                               pairs_per_image=tcfg.pairs_per_image)
        return TeacherView(name, points, ensemble_pairs(member_points, planned), reports)
    sources = list(member_points.values())
    name = next(iter(member_points))
    if tcfg.fallback:
        missing = [item for item, key in zip(manifest, keys, strict=True)
                   if key not in sources[0]]
        if missing:
            fallback = make_teacher(tcfg.fallback)
            try:
                reports.append(teach(fallback, manifest.subset(missing, "fallback"), store,
                                     progress=progress))
            finally:
                fallback.close()
            sources.append(store.points(fallback.teacher_id, fallback.prompt_version, keys))
            name = f"{name} (+{fallback.teacher_id} for {len(missing)} images)"
    points = merge_with_fallback(sources) if len(sources) > 1 else sources[0]
    return TeacherView(name, points, primary_pairs, reports)


@dataclass
class Workspace:
    """Everything a run computes once: images, keys, features, teacher judgments."""

    config: RunConfig
    manifest: Manifest
    keys: list[str]
    train_rows: np.ndarray
    test_rows: np.ndarray
    features: np.ndarray
    mos: np.ndarray
    teacher: TeacherView

    @property
    def teacher_scores(self) -> np.ndarray:
        return np.array([self.teacher.points[k].score if k in self.teacher.points else np.nan
                         for k in self.keys])

    def targets(self, rows: np.ndarray) -> TeacherTargets:
        """Teacher judgments of ``rows`` (indexing the features[rows] matrix)."""
        keys = [self.keys[i] for i in rows]
        wanted = set(keys)
        points = {k: p for k, p in self.teacher.points.items() if k in wanted}
        return build_targets(keys, points, self.teacher.pairs)


def split_rows(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    if any(item.split for item in manifest):
        train = np.array([i for i, item in enumerate(manifest) if item.split == "train"])
        test = np.array([i for i, item in enumerate(manifest) if item.split == "test"])
        if train.size and test.size:
            return train, test
    raise ValueError(f"{manifest.source}: needs a train/test split column for evaluation")


def prepare(config: RunConfig, progress: bool = True) -> Workspace:
    set_cpu_threads()
    manifest = load_manifest(config)
    keys = hash_manifest(manifest, progress)
    train_rows, test_rows = split_rows(manifest)
    with JudgmentStore(config.judgments_path) as store:
        view = gather_judgments(config, manifest, keys, train_rows, store, progress)
    extractor = FeatureExtractor(config.student.backbone, config.student.input_size,
                                 config.cache_dir)
    features = extractor.transform(manifest, keys, progress=progress)
    mos = np.array([np.nan if i.mos is None else i.mos for i in manifest], dtype=np.float64)
    return Workspace(config, manifest, keys, train_rows, test_rows, features, mos, view)


def label_count(budget: float, n_train: int) -> int:
    """A budget ≤ 1 given as a float is a fraction of the training split (1.0 = all of it);
    an integer or a value above 1 is a count of labels."""
    if budget < 0:
        raise ValueError(f"label budget must be ≥ 0, got {budget}")
    if budget < 1 or (isinstance(budget, float) and budget == 1.0):
        return int(round(budget * n_train))
    return min(int(budget), n_train)


@dataclass
class MethodResult:
    method: str
    predictions: np.ndarray  # on the test rows
    score_map: ScoreMap
    head: QualityHead | None = None
    seconds: float = 0.0


def _check_usable(ws: Workspace, rows: np.ndarray) -> None:
    if np.isnan(ws.mos[rows]).any():
        raise ValueError("some labelled images have no MOS")


def run_leaf(ws: Workspace, label_rows: np.ndarray, distill: DistillConfig,
             distilled: QualityHead | None = None, name: str = "LEAF") -> MethodResult:
    """Distil on the training images' teacher judgments, fine-tune on the labelled ones, map."""
    start = time.time()
    x_train = ws.features[ws.train_rows]
    targets = ws.targets(ws.train_rows)
    head = distilled or distill_head(x_train, targets, distill)
    score_map = ScoreMap()
    if label_rows.size:
        _check_usable(ws, ws.train_rows[label_rows])
        mos = ws.mos[ws.train_rows[label_rows]]
        head = finetune_head(head, x_train, label_rows, mos, ws.config.calibration,
                             targets=targets, distill_config=distill)
        score_map = fit_score_map(head.predict(x_train[label_rows]), mos)
    predictions = score_map(head.predict(ws.features[ws.test_rows]))
    return MethodResult(name, predictions, score_map, head, time.time() - start)


def run_labels_only(ws: Workspace, label_rows: np.ndarray, hidden: int = 64,
                    dropout: float = 0.2) -> MethodResult:
    start = time.time()
    x_train = ws.features[ws.train_rows]
    mos = ws.mos[ws.train_rows[label_rows]]
    head = train_on_labels(x_train, label_rows, mos, ws.config.calibration, hidden, dropout)
    score_map = fit_score_map(head.predict(x_train[label_rows]), mos)
    predictions = score_map(head.predict(ws.features[ws.test_rows]))
    return MethodResult("student on labels alone", predictions, score_map, head,
                        time.time() - start)


def run_teacher_alone(ws: Workspace, label_rows: np.ndarray, scores: np.ndarray | None = None,
                      name: str = "teacher alone + logistic") -> MethodResult:
    """A teacher's scores (default: the run's teacher) mapped onto MOS with the labelled images."""
    scores = ws.teacher_scores if scores is None else scores
    labelled = ws.train_rows[label_rows]
    keep = ~np.isnan(scores[labelled])
    score_map = fit_score_map(scores[labelled][keep], ws.mos[labelled][keep]) if (
        label_rows.size) else ScoreMap()
    test_scores = scores[ws.test_rows]
    if np.isnan(test_scores).any():
        raise ValueError("the teacher has no judgment for some test images")
    return MethodResult(name, score_map(test_scores), score_map)


def run_linear_probe(ws: Workspace, label_rows: np.ndarray) -> MethodResult:
    """Ridge regression on frozen features, regularisation chosen by efficient leave-one-out."""
    from leafiqa.calibration.ridge import fit_ridge

    x_train = ws.features[ws.train_rows][label_rows]
    mos = ws.mos[ws.train_rows[label_rows]]
    model = fit_ridge(x_train, mos)
    return MethodResult("linear probe (ridge)", model(ws.features[ws.test_rows]), ScoreMap())


def build_network(ws: Workspace, head: QualityHead, score_map: ScoreMap,
                  backbone: MultiLevelBackbone | None = None) -> LeafNetwork:
    backbone = backbone or MultiLevelBackbone(ws.config.student.backbone, pretrained=True)
    return LeafNetwork(backbone, head, score_map).eval()


def tune_backbone_tail(ws: Workspace, progress: bool = True
                       ) -> tuple[Workspace, MultiLevelBackbone, QualityHead]:
    """Distil, then fine-tune the last blocks on the teacher's judgments of the training images;
    returns the workspace with every image's features recomputed by the tuned backbone."""
    import dataclasses

    import torch

    from leafiqa.student.tail_tuning import (
        TailConfig,
        cache_front,
        tail_features_batched,
        tune_tail,
    )

    student = ws.config.student
    head = distill_head(ws.features[ws.train_rows], ws.targets(ws.train_rows), ws.config.distill)
    backbone = MultiLevelBackbone(student.backbone, pretrained=True).eval()
    cut = backbone.block_count - student.unfreeze_blocks
    # the front stays frozen: run it once for every image, tune on the training rows
    front = cache_front(backbone, [i.path for i in ws.manifest], student.input_size, cut,
                        progress)
    backbone, head = tune_tail(
        backbone, head, front.rows(torch.as_tensor(ws.train_rows)), ws.targets(ws.train_rows),
        TailConfig(blocks=student.unfreeze_blocks, epochs=student.tail_epochs,
                   lr=student.tail_lr, seed=ws.config.distill.seed),
        ws.config.distill, progress=progress)
    features = tail_features_batched(backbone, front, cut).numpy()
    return dataclasses.replace(ws, features=features), backbone, head


def save_student(ws: Workspace, result: MethodResult, path: Path,
                 label_rows: np.ndarray, backbone: MultiLevelBackbone | None = None) -> Path:
    assert result.head is not None
    labelled_mos = ws.mos[ws.train_rows[label_rows]] if label_rows.size else np.zeros(0)
    train_manifest = ws.manifest.subset([ws.manifest[i] for i in ws.train_rows], "train")
    info = ModelInfo(
        backbone=ws.config.student.backbone,
        input_sizes=as_sizes(ws.config.student.input_size),
        head=result.head.config(),
        score_map=result.score_map,
        teacher_ids=sorted({p.teacher_id for p in ws.teacher.points.values()}),
        manifest_hash=train_manifest.fingerprint(),
        mos_range=(float(labelled_mos.min()), float(labelled_mos.max()))
        if labelled_mos.size else None,
        notes={"teacher": ws.teacher.name, "labels": int(label_rows.size),
               "dataset": ws.manifest.source},
    )
    return save_model(path, build_network(ws, result.head, result.score_map, backbone), info)


def run_pipeline(config: RunConfig, progress: bool = True) -> dict:
    """``leaf run``: the whole pipeline with the configured label budget, plus the two
    baselines on the same labels. Writes the model file, results.json and a scatter plot."""
    started = time.time()
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    ws = prepare(config, progress)
    n_labels = label_count(config.labels.budget, ws.train_rows.size)
    label_rows = select_labels(ws.train_rows.size, n_labels, strategy=config.labels.selection,
                               teacher_scores=ws.teacher_scores[ws.train_rows],
                               seed=config.labels.seed)
    tuned_backbone = None
    if config.student.unfreeze_blocks > 0:
        tuned_ws, tuned_backbone, tuned_head = tune_backbone_tail(ws, progress)
        results = [run_leaf(tuned_ws, label_rows, config.distill, distilled=tuned_head)]
    else:
        results = [run_leaf(ws, label_rows, config.distill)]
    if n_labels >= 2:
        results.append(run_labels_only(ws, label_rows, config.distill.hidden,
                                       config.distill.dropout))
    results.append(run_teacher_alone(ws, label_rows))
    mos_test = ws.mos[ws.test_rows]
    calibrated = n_labels >= 2
    metrics = {r.method: evaluate(r.predictions, mos_test, calibrated) for r in results}
    model_path = save_student(ws, results[0], output / "leaf-model.safetensors", label_rows,
                              tuned_backbone)
    from leafiqa.evaluation.plots import scatter_plot

    plot = scatter_plot(results[0].predictions, mos_test, output / "scatter.png",
                        title=f"LEAF, {n_labels} labels — {ws.teacher.name}")
    summary = {
        "teacher": ws.teacher.name,
        "student": f"{ws.config.student.backbone} at "
                   + "+".join(str(size) for size in as_sizes(ws.config.student.input_size))
                   + " px",
        "dataset": ws.manifest.source,
        "n_train": int(ws.train_rows.size),
        "n_test": int(ws.test_rows.size),
        "n_labels": n_labels,
        "label_selection": config.labels.selection,
        "metrics": metrics,
        "model": str(model_path),
        "scatter_plot": str(plot),
        "teach_reports": [r.summary() for r in ws.teacher.reports],
        "seconds": round(time.time() - started, 1),
        "config": config_to_dict(config),
    }
    (output / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def format_results(summary: dict) -> str:
    lines = [
        f"teacher: {summary['teacher']}",
        f"student: {summary['student']}",
        f"data: {summary['dataset']} — {summary['n_train']} train / {summary['n_test']} test, "
        f"{summary['n_labels']} MOS labels ({summary['label_selection']})",
        "",
        f"{'method':<28} {'SRCC':>7} {'KRCC':>7} {'PLCC':>7} {'PLCC*':>7} {'RMSE':>7}",
    ]
    for method, m in summary["metrics"].items():
        lines.append(f"{method:<28} {m['srcc']:7.4f} {m['krcc']:7.4f} {m['plcc']:7.4f} "
                     f"{m['plcc_fitted']:7.4f} {m['rmse']:7.4f}")
    lines += [
        "",
        "PLCC: predictions as calibrated on the training labels; PLCC*: after a 4-parameter "
        "logistic fitted on the test set (VQEG convention).",
        f"model: {summary['model']}   plot: {summary['scatter_plot']}   "
        f"time: {summary['seconds']} s",
    ]
    return "\n".join(lines)
