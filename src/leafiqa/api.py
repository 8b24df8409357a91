"""The Python API the ``leaf`` command is a thin layer over: one function per step of the
pipeline (teach, extract features, distil, calibrate, evaluate, score, export) and of the
labelling loop (select, create a study, export its ratings), each taking and returning plain
values — paths, manifests, records — and raising LEAF's errors (``leafiqa.errors``) for what a
user can get wrong. Each function imports what it uses: importing this module loads no stage
(``leaf score`` runs without PyTorch)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leafiqa.defaults import (
    DEFAULT_BACKBONE,
    DEFAULT_INPUT_SIZE,
    DEFAULT_SPLIT,
    DEFAULT_STORE,
    ENGINES,
    cache_folder,
)
from leafiqa.errors import ConfigError, DataError

if TYPE_CHECKING:
    from leafiqa.calibration.estimate import AccuracyEstimate, LearningCurve
    from leafiqa.config import RunConfig
    from leafiqa.data.manifest import Manifest
    from leafiqa.distributed.ray_features import RayFeaturesReport
    from leafiqa.distributed.ray_score import RayScoreReport
    from leafiqa.distributed.ray_teach import RaySettings
    from leafiqa.judgments.runner import TeachReport
    from leafiqa.labelling.rounds import RoundsMerge
    from leafiqa.labelling.screening import RaterCheck
    from leafiqa.labelling.select import NextImages
    from leafiqa.labelling.study import Rater, Study
    from leafiqa.model.file import LeafNetwork, ModelInfo
    from leafiqa.model.graphs import Parity
    from leafiqa.student.distill import TeacherTargets

log = logging.getLogger(__name__)


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}' ({' or '.join(ENGINES)})")


# --- teach ------------------------------------------------------------------------------------


@dataclass
class Taught:
    """What ``teach_images`` did: the run's report and, with several servers, one line per
    server (requests, failures, latency)."""

    report: TeachReport
    endpoints: list[str] = field(default_factory=list)


def teach_images(manifest: Manifest, teacher: str = "cues", store: str | Path = DEFAULT_STORE,
                 *, teacher_options: dict[str, object] | None = None, pairs_per_image: int = 4,
                 max_requests: int | None = None, engine: str = "local",
                 ray: RaySettings | None = None, progress: bool = True,
                 strict: bool = False) -> Taught:
    """``leaf teach``: the teacher ``teacher`` (a spec, ``teachers.specs``) judges
    ``manifest``'s images point-wise and ``pairs_per_image`` pairs each, into ``store``;
    resumes where a run stopped. ``engine`` ray: a Ray Data pipeline with the teacher in an
    actor pool (``ray``: its settings)."""
    from leafiqa.judgments.runner import teach
    from leafiqa.judgments.store import JudgmentStore
    from leafiqa.teachers.specs import make_teacher

    check_engine(engine)
    options = dict(teacher_options or {})
    if engine == "ray":
        from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

        with JudgmentStore(store) as opened:
            return Taught(teach_with_ray(teacher, options, manifest, opened,
                                         pairs_per_image=pairs_per_image,
                                         max_requests=max_requests,
                                         settings=ray or RaySettings()))
    chosen = make_teacher(teacher, **options)
    with JudgmentStore(store) as opened:
        try:
            report = teach(chosen, manifest, opened, pairs_per_image=pairs_per_image,
                           max_requests=max_requests, progress=progress, strict=strict)
        finally:
            chosen.close()
    servers = getattr(chosen, "endpoint_pool", None)
    return Taught(report, [server.line() for server in servers.stats()] if servers else [])


# --- features ---------------------------------------------------------------------------------


@dataclass
class FeaturesFilled:
    """What ``extract_features`` did on this machine."""

    images: int
    tag: str  # the backbone and sizes the features are of
    cache_dir: Path
    seconds: float

    def summary(self) -> str:
        return (f"features of {self.images} images ({self.tag}) in {self.cache_dir} after "
                f"{self.seconds:.1f} s")


def extract_features(config: RunConfig, *, engine: str = "local", ray_address: str | None = None,
                     actors: int | None = None, progress: bool = True
                     ) -> FeaturesFilled | RayFeaturesReport:
    """``leaf features``: the frozen features of a config's images in its feature store
    (resumes where a run stopped), so that ``leaf run`` on the same config finds them all.
    ``engine`` ray: the backbone's ONNX graph in an actor pool on a Ray cluster."""
    import time

    from leafiqa.experiments.workspace import load_manifest
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.student.features import FeatureExtractor, set_cpu_threads

    check_engine(engine)
    manifest = load_manifest(config)
    keys = hash_manifest(manifest, progress)
    extractor = FeatureExtractor(config.student.backbone, config.student.input_size,
                                 config.cache_dir)
    if engine == "ray":
        from leafiqa.distributed.ray_features import extract_with_ray

        return extract_with_ray(extractor, manifest, keys, address=ray_address, actors=actors)
    started = time.perf_counter()
    set_cpu_threads()
    extractor.fill(manifest, keys, progress=progress)
    return FeaturesFilled(len(manifest), extractor.tag, Path(config.cache_dir),
                          time.perf_counter() - started)


# --- distil -----------------------------------------------------------------------------------


def stored_targets(store_path: Path, teacher_id: str | None, keys: list[str]) -> TeacherTargets:
    """The teacher's stored judgments of the images ``keys`` as distillation targets."""
    from leafiqa.judgments.store import JudgmentStore
    from leafiqa.student.distill import build_targets

    with JudgmentStore(store_path) as store:
        teacher_id = store.resolve_teacher(teacher_id)
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
    backbone: str = DEFAULT_BACKBONE,
    input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    point_weight: float = 1.0,
    pair_weight: float = 1.0,
    use_reliability: bool = True,
) -> Path:
    """``leaf distill``: a student distilled from the teacher's stored judgments of
    ``manifest``'s training images, saved (uncalibrated) to ``out``."""
    from leafiqa.data.splits import training_images
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.model.file import LeafNetwork, model_info, save_model
    from leafiqa.student.backbone import build_backbone
    from leafiqa.student.distill import DistillConfig, distill_head
    from leafiqa.student.features import FeatureExtractor
    from leafiqa.student.ridge import FeatureScaler

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
    from leafiqa.model.modelinfo import trained_digests

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
    from leafiqa.model.file import save_model

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
    import numpy as np

    from leafiqa.calibration.estimate import estimate_accuracy, learning_curve
    from leafiqa.calibration.prior import PoolSample, calibrate_prior, sample_pool_rows
    from leafiqa.data.splits import labelled_rows, training_images
    from leafiqa.experiments.workspace import label_count
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.labelling.designs import embed, representation_weights, select_among_labelled
    from leafiqa.model.file import LeafNetwork, load_network, model_info
    from leafiqa.student.features import FeatureExtractor
    from leafiqa.student.ridge import RidgeBasis, feature_priors

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


def calibrate_labels(model_path: str | Path, labels: str | Path, *,
                     pool: str | Path | None = None, kind: str = "auto",
                     split: str | None = DEFAULT_SPLIT, budget: float = 1.0,
                     selection: str = "random", seed: int = 0,
                     store: str | Path | None = None, teacher_id: str | None = None,
                     out: str | Path | None = None, cache_dir: str | Path | None = None,
                     next_labels: int | None = None) -> Path:
    """``leaf calibrate``: the labels read from ``labels`` (a data set or CSV with MOS; values
    off the scale it declares are warned of), placed among the images of ``pool`` when it is
    named (the estimate then speaks for that pool), and ``calibrate_model`` on them. With
    ``next_labels`` unset, the model file records what as many labels again would add."""
    from leafiqa.data.inputs import read_data, resolve_kind
    from leafiqa.data.manifest import with_labels
    from leafiqa.data.readers import check_label_values, declared_scale
    from leafiqa.data.splits import training_images
    from leafiqa.experiments.workspace import label_count

    manifest = read_data(labels, kind, split)
    for note in check_label_values(manifest, declared_scale(resolve_kind(kind, labels),
                                                            Path(labels))):
        log.warning(note)
    if pool:
        manifest = with_labels(read_data(pool, kind, split), manifest)
    labelled = sum(item.mos is not None for item in training_images(manifest))
    if budget > 1 and int(budget) > labelled:
        log.warning("--budget %g: only %d labelled images; calibrating on those %d", budget,
                    labelled, labelled)
    return calibrate_model(model_path, manifest, budget=budget, selection=selection, seed=seed,
                           store=store, teacher_id=teacher_id, out=out, cache_dir=cache_dir,
                           target="pool" if pool else "new",
                           next_labels=next_labels or min(labelled,
                                                          label_count(budget, labelled)))


# --- evaluate ---------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """A model file against MOS: the metrics (``evaluation.metrics.evaluate``, the count of
    unreadable images, how many evaluated images trained the model — "unknown" without its
    record — and a warning when the scales differ) and the counts behind them."""

    metrics: dict[str, Any]
    images: int  # the images evaluated (readable)
    seen: int | None  # of those, how many trained the model (None: not recorded)
    labelled: int | None  # … with their labels
    warning: str | None = None


def evaluate_model(model_path: str | Path, manifest: Manifest, *, subset: str = "test",
                   runtime: str = "auto", strict: bool = False,
                   progress: bool = True) -> Evaluation:
    """``leaf evaluate``: SRCC / KRCC / PLCC / RMSE of the model file on ``manifest``'s
    ``subset`` split (every image when it has none or ``subset`` is empty). Images that cannot
    be decoded are left out and counted (``strict``: the first one is a DataError); none
    decoded is ``NothingSucceeded``."""
    import numpy as np

    from leafiqa.errors import NothingSucceeded
    from leafiqa.evaluation.metrics import evaluate, scale_mismatch
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.model.modelinfo import labelled_in_training, seen_in_training
    from leafiqa.model.scorer import Scorer

    if subset and any(item.split for item in manifest):
        manifest = manifest.split(subset)
    mos = np.array(manifest.mos_array())  # before scoring: no MOS is an error, not a crash
    scorer = Scorer(model_path, runtime=runtime)
    predictions = scorer.score_paths([item.path for item in manifest], progress=progress)
    ok = ~np.isnan(predictions)
    if strict and not ok.all():
        raise DataError(f"--strict: {manifest[int(np.argmin(ok))].path}: could not be decoded")
    if not ok.any():
        raise NothingSucceeded(f"none of the {len(manifest)} images could be decoded")
    metrics: dict[str, Any] = dict(evaluate(predictions[ok], mos[ok],
                                            calibrated=scorer.info.score_map.kind != "none"))
    metrics["unreadable"] = int((~ok).sum())
    readable = manifest.subset(item for item, good in zip(manifest, ok, strict=True) if good)
    keys = hash_manifest(readable)
    seen = seen_in_training(scorer.info, keys)
    labelled = labelled_in_training(scorer.info, keys)
    metrics["seen_in_training"] = "unknown" if seen is None else seen
    metrics["labelled_in_training"] = "unknown" if labelled is None else labelled
    warning = scale_mismatch(scorer.info.score_range, mos[ok])
    if warning:
        metrics["warning"] = warning
    return Evaluation(metrics, len(readable), seen, labelled, warning)


# --- score ------------------------------------------------------------------------------------


@dataclass
class ScoreRun:
    """What ``score_images`` did on this machine: the images scored, the reasons of those that
    failed (one per unreadable image or folder), those a resumed CSV already held."""

    scored: int
    failures: list[str]
    resumed: int
    inputs: int  # images and unlistable folders given
    seconds: float
    engine: str
    description: str  # where the scores went

    def reason_counts(self) -> str:
        """``3 not an image, 1 named pipe``: the failures counted by reason."""
        from collections import Counter

        from leafiqa.data.images import failure_reason
        from leafiqa.data.readers import NOT_REGULAR

        counts = Counter(NOT_REGULAR if f": {NOT_REGULAR}" in reason
                         else failure_reason(reason) for reason in self.failures)
        return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())

    def summary(self) -> str:
        rate = self.scored / max(self.seconds, 1e-9)
        skipped = (f"; skipped {len(self.failures)} unreadable ({self.reason_counts()})"
                   if self.failures else "")
        return (f"scored {plural(self.scored, 'image')} in {self.seconds:.1f} s "
                f"({rate:.1f} img/s, {self.engine}) → {self.description}{skipped}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, count: int) -> None:
        return None


def _progress_bar(total: int, show: bool) -> Any:
    """tqdm's bar on stderr, or (not shown) an object that counts nothing: tqdm is not even
    imported then (``leaf score`` on one image starts faster)."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="scoring")


def score_images(model: str | Path, inputs: Sequence[str | Path], out: str | Path | None = None,
                 *, force: bool = False, runtime: str = "auto", precision: str = "auto",
                 batch_size: int = 8, workers: int | None = None, threads: int | None = None,
                 engine: str = "local", ray_address: str | None = None,
                 actors: int | None = None, strict: bool = False,
                 progress: bool = False) -> ScoreRun | RayScoreReport:
    """``leaf score``: score the images ``inputs`` name (files, folders, globs, lists:
    ``data.inputs.expand_inputs``) with a model (a name or a file). ``out``: a .csv (written
    as it goes; an existing one is resumed unless ``force``), .json or .parquet file, ``-``
    (CSV on stdout) or None (``path<TAB>score`` lines on stdout, the score alone for one
    image). Unreadable images keep their row with the reason and are logged once; ``strict``:
    the first one is a DataError. ``engine`` ray: an actor pool on a Ray cluster (``out`` a
    file)."""
    from leafiqa.data.inputs import expand_inputs, list_files
    from leafiqa.model.outputs import STDOUT, check_not_an_input, output_format

    check_engine(engine)
    target = None if out is None else (STDOUT if str(out) == STDOUT else Path(out))
    if isinstance(target, Path):
        output_format(target)
    unlisted: list[str] = []
    paths = expand_inputs([str(entry) for entry in inputs], unlisted)
    if strict and unlisted:
        raise DataError(f"--strict: {unlisted[0]}")
    if not paths and not unlisted:
        raise DataError("no images to score")
    if isinstance(target, Path):
        check_not_an_input(target, list_files([str(entry) for entry in inputs]) + paths)
    if engine == "ray":
        from leafiqa.distributed.ray_score import score_with_ray

        if not isinstance(target, Path):
            raise ConfigError("--engine ray writes a file: give --out FILE.csv or FILE.parquet")
        return score_with_ray(model, paths, target, address=ray_address, actors=actors,
                              batch_size=batch_size, precision=precision, threads=threads)
    return _score_here(model, paths, unlisted, target, force=force, runtime=runtime,
                       precision=precision, batch_size=batch_size, workers=workers,
                       threads=threads, strict=strict, progress=progress)


def _score_here(model: str | Path, paths: list[Path], unlisted: list[str],
                target: Path | str | None, *, force: bool, runtime: str, precision: str,
                batch_size: int, workers: int | None, threads: int | None, strict: bool,
                progress: bool) -> ScoreRun:
    import time

    from leafiqa.data.manifest import printable
    from leafiqa.model.outputs import ScoreWriter
    from leafiqa.model.scorer import Scorer

    score_log = logging.getLogger("leafiqa.score")
    inputs = len(paths) + len(unlisted)
    single = target is None and len(paths) == 1 and not unlisted
    # the output is opened (checked writable, an existing one refused or resumed) before the
    # model is loaded and anything is scored
    with ScoreWriter(target, force=force, single=single) as writer:
        scorer = Scorer(model, runtime=runtime, threads=threads, precision=precision)
        scorer.engine  # noqa: B018 - load the graph now so a bad precision fails here
        failures: list[str] = []
        for reason in unlisted:
            score_log.warning("skipped %s", reason)
            failures.append(reason)
        if writer.resumed:
            score_log.warning("%s: resuming; %s already there are not scored again (--force "
                              "to start again)", writer.description,
                              plural(writer.resumed, "image"))
            paths = [path for path in paths if printable(path) not in writer.done]
        start = time.time()
        position = {path: index for index, path in reversed(list(enumerate(paths)))}
        with _progress_bar(len(paths), progress) as bar:
            for batch in scorer.iter_scores(paths, batch_size, workers):
                rows: list[tuple[Path, float | None, str]] = [
                    (path, value, "") for path, value in zip(batch.paths, batch.scores,
                                                             strict=True)]
                rows += [(path, None, reason) for path, reason in batch.failures]
                for path, value, reason in sorted(rows, key=lambda row: position[row[0]]):
                    if reason and strict:
                        raise DataError(f"--strict: {printable(reason)}")
                    writer.add(path, value, reason)
                    if reason:
                        failures.append(printable(reason))
                        score_log.warning("skipped %s", printable(reason))
                writer.flush()
                bar.update(len(batch.paths) + len(batch.failures))
    return ScoreRun(writer.scored, failures, writer.resumed, inputs, time.time() - start,
                    scorer.engine, writer.description)


# --- export -----------------------------------------------------------------------------------


def export_model(model_path: str | Path, out: str | Path | None = None) -> Path:
    """``leaf export``: the calibrated student (calibration included) as one ONNX graph at
    ``out`` (default: ``MODEL.onnx``) that reads normalised float arrays."""
    from leafiqa.model.onnx_export import export_model_onnx

    return export_model_onnx(model_path, out)


def quantize_model(model_path: str | Path, data: Manifest, *, calibration: int = 64,
                   parity: int = 128, quant_format: str = "qdq") -> tuple[Path, Parity]:
    """``leaf export --quantize int8``: ``MODEL.int8.onnx``, calibrated on ``calibration``
    of ``data``'s training images and checked against FP32 on ``parity`` others (the record
    says whether it is used: ``model.quantize``)."""
    from leafiqa.data.splits import training_images
    from leafiqa.model.quantize import quantize_int8

    images = [item.path for item in training_images(data)] or [item.path for item in data]
    return quantize_int8(model_path, images, calibration=calibration, parity=parity,
                         quant_format=quant_format)


def model_card(model: str | Path) -> dict[str, Any]:
    """``leaf info``: a model's path, card and metadata (training data, teacher, labels, MOS
    scale, test metrics, licence, tool version, commit, labels file, seeds)."""
    from leafiqa.model.modelinfo import read_info
    from leafiqa.model.registry import resolve_model
    from leafiqa.model.scorer import describe

    path = resolve_model(model)
    return {"path": str(path), **describe(read_info(path))}


# --- the labelling loop -----------------------------------------------------------------------


def select_images(manifest: Manifest, n: int, *, selection: str = "variance",
                  labels: Path | None = None, exclude: Sequence[Path] = (),
                  store: str | Path | None = DEFAULT_STORE, teacher_id: str | None = None,
                  model: str | Path | None = None, cache_dir: str | Path | None = None,
                  seed: int = 0) -> NextImages:
    """``leaf select``: the ``n`` images of ``manifest`` to rate next, in the order to ask
    (``labelling.select.select_next``), given those ``labels`` names as rated and never those
    ``exclude`` names; ``model``: its backbone and input sizes give the features."""
    from leafiqa.labelling.select import select_next

    if labels is not None and not Path(labels).is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    options: dict[str, Any] = {}
    if model is not None:
        from leafiqa.model.modelinfo import read_info

        info = read_info(model)
        options = {"backbone": info.backbone, "input_size": info.input_sizes}
    return select_next(manifest, n, strategy=selection, labels=labels, exclude=exclude,
                       store=None if store is None else Path(store), teacher_id=teacher_id,
                       cache_dir=cache_dir, seed=seed, **options)


def label_outlook(model: str | Path, manifest: Manifest, labels: str | Path, n: int, *,
                  selection: str = "variance", store: str | Path | None = None,
                  teacher_id: str | None = None, kind: str = "auto",
                  split: str | None = DEFAULT_SPLIT,
                  cache_dir: str | Path | None = None) -> Calibrated | None:
    """With the labels so far and the student: the accuracy they estimate for the pool and
    what ``n`` more labels are expected to add (``calibrate``, nothing written); None with
    fewer than two labels."""
    from leafiqa.data.inputs import read_data
    from leafiqa.data.manifest import with_labels

    rated = read_data(labels, kind, split)
    if sum(item.mos is not None for item in rated) < 2:
        return None
    return calibrate(model, with_labels(manifest, rated), budget=1.0, selection=selection,
                     store=store, teacher_id=teacher_id, cache_dir=cache_dir, target="pool",
                     next_labels=n)


@dataclass
class NewStudy:
    """A study ``create_study`` made: the admin key and the rater links (shown once: only
    their hashes are stored) and the gold images it dropped because they were chosen."""

    study: Study
    admin_key: str
    links: list[tuple[Rater, str]]
    dropped_gold: list[str]
    gold: int  # gold images it keeps


def create_study(folder: str | Path, images: Path, *, root: Path | None = None,
                 allow_roots: Sequence[Path] = (), gold: Path | None = None,
                 scale: str = "acr", raters: int = 2, repeats: int = 2,
                 title: str = "Image quality study", instructions: str | None = None,
                 seed: int = 0) -> NewStudy:
    """``leaf rate create``: a study of the images ``images`` lists (a ``leaf select``
    output, a CSV or a folder), each checked (a regular file inside the list's folder, or
    ``root``, or one of ``allow_roots``, decoded as an image); ``gold``: a CSV name,value of
    hidden gold images with a known answer on the study's ``scale``."""
    import dataclasses

    from leafiqa.labelling.rounds import drop_chosen_gold, read_gold
    from leafiqa.labelling.study import (
        MAX_RATERS_AT_ONCE,
        Study,
        StudySettings,
        read_image_list,
    )

    if not 1 <= raters <= MAX_RATERS_AT_ONCE:
        raise DataError(f"--raters: expected 1 to {MAX_RATERS_AT_ONCE} links, got {raters}")
    if repeats < 0:
        raise DataError(f"--repeats: expected 0 or more, got {repeats}")
    listed = read_image_list(images, root, allow_roots)
    gold_images, answers = read_gold(gold, scale, allow_roots) if gold else ([], {})
    settings = StudySettings(title=title, scale=scale, repeats=repeats, seed=seed, gold=answers)
    gold_set = drop_chosen_gold(listed, gold_images, answers, gold)
    if gold_set.dropped:
        gold_images = gold_set.images
        settings = dataclasses.replace(settings, gold=gold_set.answers)
    if instructions:
        settings = dataclasses.replace(settings, instructions=instructions)
    created = Study.create(folder, listed, settings, gold_images)
    key = created.set_admin_key()
    return NewStudy(created, key, created.add_raters(raters), list(gold_set.dropped),
                    len(gold_images))


@dataclass
class ExportedRatings:
    """What ``export_ratings`` wrote: the raters' checks, the images labelled, the merge with
    the rounds already in the label file, and the names written differently from the study's
    (as paths relative to the label file's folder, or as ``./NAME`` so no spreadsheet runs
    them as a formula)."""

    checks: list[RaterCheck]
    rows: int
    merged: RoundsMerge
    relative: list[str]
    guarded: list[str]


def export_ratings(study: str | Path, out: Path, method: str = "bt500") -> ExportedRatings:
    """``leaf ratings export``: screen the raters and write each image's MOS (name, mos, std,
    n, round) merged into the label file at ``out``: the study is a round (its rows replaced,
    the other rounds' kept). Never into the study's folder or over one of its images; a
    failure leaves the label file as it was."""
    from leafiqa.data.readers import scale_declaration
    from leafiqa.labelling.rounds import fresh_labels, merge_round
    from leafiqa.labelling.screening import (
        check_labels_target,
        estimate,
        formula_safe,
        label_name,
        votes_from_study,
        write_labels,
    )
    from leafiqa.labelling.study import Study

    opened = Study(study)
    check_labels_target(opened, out)
    result = estimate(votes_from_study(opened), opened.settings, method=method)
    with fresh_labels(out) as fresh:
        rows = write_labels(opened, fresh, result)
        try:
            merged = merge_round(fresh, out, opened.folder.resolve().name)
            scale_declaration(fresh).replace(scale_declaration(out))
        finally:
            scale_declaration(fresh).unlink(missing_ok=True)
    paths = {image.name: image.path for image in opened.images()}
    written = {name: label_name(name, paths[name], out.parent)
               for name, n in zip(result.names, result.n, strict=True) if n > 0}
    return ExportedRatings(list(result.checks), rows, merged,
                           [name for name, label in written.items() if label != name],
                           [label for label in written.values() if formula_safe(label) != label])
