"""A run's workspace: the data set with its split, every image's teacher judgments and frozen
features — everything computed once and shared by the methods (``leafiqa.experiments.methods``)."""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from leafiqa.calibration.prior import PoolSample, sample_pool_rows
from leafiqa.config import RunConfig, TeacherConfig
from leafiqa.data.manifest import DataError, Manifest
from leafiqa.data.readers import (
    find_split_file,
    read_dataset,
    read_split_file,
    split_file_has,
)
from leafiqa.data.splits import prepare_splits
from leafiqa.errors import ConfigError
from leafiqa.judgments.ensemble import (
    MemberWeight,
    ensemble_id,
    ensemble_pairs,
    ensemble_points,
    member_weights,
    merge_with_fallback,
)
from leafiqa.judgments.pairs import select_pairs
from leafiqa.judgments.runner import TeachReport, hash_manifest, teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.student.distill import TeacherTargets, build_targets
from leafiqa.student.features import FeatureExtractor, set_cpu_threads
from leafiqa.student.head import QualityHead
from leafiqa.student.ridge import FeatureScaler, FeatureSource, RidgeBasis, feature_priors
from leafiqa.teachers.protocol import PairJudgment, PointJudgment
from leafiqa.teachers.specs import make_teacher


def load_manifest(config: RunConfig) -> Manifest:
    """The configured data set with ``data.split`` applied from its splits file (``data.splits``,
    ``splits.csv`` beside the data, or split columns of the data CSV itself), for every reader.
    A data set without such a column keeps the split its reader found (a ``split`` column), or
    gets a seeded ``data.holdout`` test set, or trains on everything (``data.splits``); it says
    so in ``manifest.extra["split_column"]`` (None) so a multi-split bench can refuse it."""
    data = config.data
    options: dict[str, object] = {}
    if data.kind in ("agiqa3k", "clive"):
        options["split"] = None  # applied below like every other data set's
    if data.image_root:
        if data.kind != "csv":
            raise DataError(f"data.image_root applies to the csv reader only (kind is "
                            f"'{data.kind}')")
        options["image_root"] = data.image_root
    manifest = read_dataset(data.kind, data.path, **options)
    manifest.extra["split_column"] = None
    split_file = find_split_file(data.path, data.splits) if data.split else None
    if split_file is not None and data.split and (data.splits or
                                                  split_file_has(split_file, data.split)):
        manifest = manifest.with_split(read_split_file(split_file, data.split),
                                       f"{split_file}:{data.split}")
        manifest.source = f"{manifest.source}+{split_file}:{data.split}"
        manifest.extra["split_column"] = data.split
    else:
        manifest = prepare_splits(manifest, data.holdout, data.holdout_seed)
    if data.limit:
        manifest = manifest.spread(int(data.limit))
    return manifest


@dataclass
class TeacherView:
    """A teacher's judgments as the student sees them (after fallback merging or ensembling).
    For an ensemble, ``members`` holds each member's point-wise judgments and ``weights`` what
    each member was weighted by (``judgments.ensemble``)."""

    name: str
    points: dict[str, PointJudgment]
    pairs: list[PairJudgment]
    reports: list[TeachReport] = field(default_factory=list)
    members: dict[str, dict[str, PointJudgment]] = field(default_factory=dict)
    weights: list[MemberWeight] = field(default_factory=list)


def _teach_points(spec: str, manifest: Manifest, keys: list[str], store: JudgmentStore,
                  tcfg: TeacherConfig, progress: bool, options: dict | None = None
                  ) -> tuple[str, dict[str, PointJudgment], TeachReport]:
    """Run (or resume) one teacher's point-wise judgments of ``manifest``; read them back."""
    teacher = make_teacher(spec, **(options or {}))
    try:
        report = teach(teacher, manifest, store, max_requests=tcfg.max_requests,
                       progress=progress)
    finally:
        teacher.close()
    return (teacher.teacher_id,
            store.points(teacher.teacher_id, teacher.prompt_version, keys), report)


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
    pair_keys = [keys[i] for i in pair_rows]
    if tcfg.ensemble:
        members: dict[str, dict[str, PointJudgment]] = {}
        reports = []
        for spec in tcfg.ensemble:
            teacher_id, points, report = _teach_points(spec, manifest, keys, store, tcfg,
                                                       progress, tcfg.options)
            members[teacher_id] = points
            reports.append(report)
        view = ensemble_view(members, keys, pair_keys, tcfg.pairs_per_image)
        view.reports = reports
        return view
    pair_manifest = manifest.subset([manifest[i] for i in pair_rows], "pairs")
    teacher = make_teacher(tcfg.spec, **tcfg.options)
    try:
        reports = [teach(teacher, manifest, store, max_requests=tcfg.max_requests,
                         progress=progress),
                   teach(teacher, pair_manifest, store, pairs_per_image=tcfg.pairs_per_image,
                         max_requests=tcfg.max_requests, progress=progress)]
    finally:
        teacher.close()
    sources = [store.points(teacher.teacher_id, teacher.prompt_version, keys)]
    # only this run's planned pairs: a store shared by runs on other splits holds more
    planned = set(reports[-1].planned_pairs)
    pairs = [p for p in store.pairs(teacher.teacher_id, teacher.prompt_version)
             if (p.key_a, p.key_b) in planned]
    name = teacher.teacher_id
    missing = [item for item, key in zip(manifest, keys, strict=True) if key not in sources[0]]
    if tcfg.fallback and missing:
        fallback_id, fallback_points, report = _teach_points(
            tcfg.fallback, manifest.subset(missing, "fallback"), keys, store, tcfg, progress)
        reports.append(report)
        sources.append(fallback_points)
        name = f"{name} (+{fallback_id} for {len(missing)} images)"
    points = merge_with_fallback(sources) if len(sources) > 1 else sources[0]
    return TeacherView(name, points, pairs, reports)


def ensemble_view(
    members: dict[str, dict[str, PointJudgment]],
    keys: list[str],
    pair_keys: list[str],
    pairs_per_image: int,
    labelled: dict[str, float] | None = None,
    equal: bool = False,
) -> TeacherView:
    """The ensemble of ``members`` weighted by agreement (with each other, and with the
    ``labelled`` images' MOS when given; ``equal``: all alike, an ablation), with pairs planned
    among ``pair_keys``."""
    weights = member_weights(members, keys, labelled, equal=equal)
    points = ensemble_points(members, keys, weights)
    judged = [k for k in dict.fromkeys(pair_keys) if k in points]
    planned = select_pairs(judged, {k: points[k].score for k in judged},
                           pairs_per_image=pairs_per_image)
    return TeacherView(ensemble_id(list(members)), points,
                       ensemble_pairs(members, planned, weights), members=members,
                       weights=weights)


PROTOCOLS = ("new", "pool")


@dataclass
class Workspace:
    """Everything a run computes once: images, keys, features, teacher judgments.

    The pool's features stay on disk (``feature_source``: rows in manifest order, read chunk
    by chunk), so a pool of any size fits in bounded memory: the scalers, the distillation,
    the student's scores and the selection's embedding stream them; only the labelled and
    test rows are gathered (``rows_features``, ``test_features``: bounded by the MOS labels,
    not the pool). ``features`` gathers every row, for the paths that need the whole matrix
    (the MLP head, ``student.finetune``, the labels-alone baseline's training rows)."""

    config: RunConfig
    manifest: Manifest
    keys: list[str]
    train_rows: np.ndarray
    test_rows: np.ndarray
    feature_source: FeatureSource
    mos: np.ndarray
    teacher: TeacherView
    feature_blocks: tuple[int, ...] | None = None  # the features' layout (FeatureScaler)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # what preparing took
    #: which images the student distils on: "new" the training split (the test images are new
    #: to it: the paper's protocol), "pool" every image of the split (a user's folder, which the
    #: student distils on and then scores; labels still come from training images only)
    protocol: str = "new"
    #: each label's error variance against a large panel's MOS (per manifest row; labels from a
    #: few raters, ``with_label_values``); None: the MOS are exact
    label_noise: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol '{self.protocol}' is not one of {PROTOCOLS}")

    def with_protocol(self, protocol: str) -> Workspace:
        """The same data, judgments and features with the student distilled per ``protocol``
        (what does not depend on it is shared, not recomputed)."""
        if protocol == self.protocol:
            return self
        views = self.__dict__.setdefault("_protocol_views", {})
        if protocol not in views:
            other = dataclasses.replace(self, protocol=protocol)
            for name in ("features", "test_features", "_embedding"):
                if name in self.__dict__:
                    other.__dict__[name] = self.__dict__[name]
            views[protocol] = other
        return views[protocol]

    def with_label_values(self, rows: np.ndarray, values: np.ndarray,
                          noise: np.ndarray | None = None) -> Workspace:
        """The same workspace with ``values`` as the MOS of manifest ``rows`` — labels as a
        rating study gave them rather than the data set's own — and ``noise`` as their error
        variance; every other image keeps its MOS, and every cache is shared."""
        # computed here first, so that the copy shares them (the distilled heads included)
        self.__dict__.setdefault("_heads", {})
        for name in ("scalers", "test_features", "pool_sample_features"):
            getattr(self, name)
        other = copy.copy(self)
        other.mos = self.mos.copy()
        other.mos[rows] = values
        if noise is not None:
            other.label_noise = np.zeros_like(self.mos)
            other.label_noise[rows] = noise
        return other

    @cached_property
    def distill_rows(self) -> np.ndarray:
        """The manifest rows the student distils on (and whose ranking the few-label rule
        keeps): the training split, or with the "pool" protocol every image of the split."""
        if self.protocol == "pool":
            return np.concatenate([self.train_rows, self.test_rows])
        return self.train_rows

    @cached_property
    def distill_source(self) -> FeatureSource:
        """The features of ``distill_rows``, chunk by chunk (in that order)."""
        if self.protocol == "new":
            return self.train_source
        return self.feature_source.subset(self.distill_rows)

    @cached_property
    def features(self) -> np.ndarray:
        """Every image's features in memory (n_images × D), gathered on first use: only for
        the paths that need the whole matrix; the default path never asks for it."""
        return self.feature_source.array()

    @cached_property
    def train_source(self) -> FeatureSource:
        """The training images' features, chunk by chunk (in ``train_rows`` order)."""
        return self.feature_source.subset(self.train_rows)

    def rows_features(self, rows: np.ndarray) -> np.ndarray:
        """The features of ``rows`` (manifest rows: a few labelled or test images) in memory."""
        if "features" in self.__dict__:
            return self.features[rows]
        return self.feature_source.take(rows)

    @cached_property
    def test_features(self) -> np.ndarray:
        return self.rows_features(self.test_rows)

    def predict(self, head: QualityHead) -> np.ndarray:
        """``head``'s score of every image, chunk by chunk."""
        return self.feature_source.map(head.predict)

    @cached_property
    def scalers(self) -> list[FeatureScaler]:
        """Feature standardisations fitted on every image the student distils on (no labels
        needed: the training split, or the whole pool): every
        block of features an equal share of the ridge prior (``student.balance_levels``), then
        every feature an equal share. The first is the default (the student's head, the
        linear probe); calibration lets the labels choose. One streamed pass."""
        blocks = self.feature_blocks if self.config.student.balance_levels else None
        return feature_priors(self.distill_source, blocks)

    @property
    def scaler(self) -> FeatureScaler:
        return self.scalers[0]

    def bases(self, label_rows: np.ndarray) -> list[RidgeBasis]:
        """The leave-one-out ridge bases of the labelled training rows, one per feature prior,
        kept for the last label set asked for (every method on the same labels shares them)."""
        key = np.asarray(label_rows).tobytes()
        cached = self.__dict__.get("_bases")
        if cached is None or cached[0] != key:
            features = self.rows_features(self.train_rows[label_rows])
            cached = (key, [RidgeBasis.fit(features, scaler) for scaler in self.scalers])
            self.__dict__["_bases"] = cached
        return cached[1]

    def basis(self, label_rows: np.ndarray) -> RidgeBasis:
        """The default prior's basis (the linear probe's)."""
        return self.bases(label_rows)[0]

    @cached_property
    def pool_sample_rows(self) -> np.ndarray:
        """The manifest rows of the pool images (those the student distils on) a few labels'
        correction must keep the student's ranking of (``calibration.prior.PoolSample``), their
        features in memory."""
        return self.distill_rows[sample_pool_rows(self.distill_rows.size)]

    @cached_property
    def pool_sample_features(self) -> np.ndarray:
        return self.rows_features(self.pool_sample_rows)

    def pool_sample(self, scores: np.ndarray) -> PoolSample:
        """The pool sample with ``scores`` (every image's student score) as its scores."""
        return PoolSample(np.asarray(scores)[self.pool_sample_rows], self.pool_sample_features,
                          self.config.calibration.min_pool_agreement)

    @property
    def teacher_scores(self) -> np.ndarray:
        return np.array([self.teacher.points[k].score if k in self.teacher.points else np.nan
                         for k in self.keys])

    def targets(self, rows: np.ndarray, view: TeacherView | None = None,
                target: str | None = None) -> TeacherTargets:
        """Judgments of ``rows`` (indexing the features[rows] matrix) by the workspace's teacher,
        or by ``view`` (the same teacher seen another way, e.g. re-weighted by labels), as
        ``target`` (default: the config's ``distill.target``)."""
        view = view or self.teacher
        keys = [self.keys[i] for i in rows]
        wanted = set(keys)
        points = {k: p for k, p in view.points.items() if k in wanted}
        return build_targets(keys, points, view.pairs, target or self.config.distill.target)


def split_rows(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows); the test set may be empty (a run that only trains a model)."""
    train = np.array([i for i, item in enumerate(manifest) if item.split == "train"], dtype=int)
    test = np.array([i for i, item in enumerate(manifest) if item.split == "test"], dtype=int)
    if not train.size:
        raise DataError(f"{manifest.source}: no training images (a split column that marks "
                        "every image 'test'?)")
    return train, test


@contextmanager
def stage(times: dict[str, float], name: str, progress: bool = True) -> Iterator[None]:
    """Time one stage of a run into ``times`` (and say so on stderr when ``progress``)."""
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 1)
    if progress:
        print(f"stage {name}: {times[name]:.1f} s", file=sys.stderr, flush=True)


def prepare(config: RunConfig, progress: bool = True) -> Workspace:
    set_cpu_threads()
    times: dict[str, float] = {}
    with stage(times, "data", progress):
        manifest = load_manifest(config)
        keys = hash_manifest(manifest, progress)
        train_rows, test_rows = split_rows(manifest)
    with stage(times, "teacher", progress), JudgmentStore(config.judgments_path) as store:
        view = gather_judgments(config, manifest, keys, train_rows, store, progress)
    with stage(times, "features", progress):
        extractor = FeatureExtractor(config.student.backbone, config.student.input_size,
                                     config.cache_dir)
        extractor.fill(manifest, keys, progress=progress)
    mos = np.array([np.nan if i.mos is None else i.mos for i in manifest], dtype=np.float64)
    return Workspace(config, manifest, keys, train_rows, test_rows, extractor.source(keys),
                     mos, view, extractor.blocks, times)


def label_count(budget: float, n_train: int) -> int:
    """A budget ≤ 1 given as a float is a fraction of the training split (1.0 = all of it);
    an integer or a value above 1 is a count of labels."""
    if budget < 0:
        raise ConfigError(f"label budget must be ≥ 0, got {budget}")
    if budget < 1 or (isinstance(budget, float) and budget == 1.0):
        return int(round(budget * n_train))
    return min(int(budget), n_train)


