"""The workspace streams the pool's features: distillation, the scalers, the student's scores,
the selection's embedding and the calibration read them chunk by chunk (only the labelled and
test rows are gathered), and give what the in-memory matrix gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.config import RunConfig, load_config
from leafiqa.data.splits import labelled_rows
from leafiqa.experiments.methods import (
    run_labels_only,
    run_leaf,
    run_linear_probe,
    run_teacher_alone,
)
from leafiqa.experiments.workspace import Workspace, label_count, prepare
from leafiqa.labelling.designs import embed, representation_weights, select_among_labelled
from leafiqa.student.ridge import FeatureSource
from tests.conftest import REPO, write_recorded_dataset

N_IMAGES, CHUNK, BLOCKS = 240, 16, (4, 8)


def pool_features() -> np.ndarray:
    """Features that carry each image's quality (its index) plus noise, float32 as stored."""
    rng = np.random.default_rng(3)
    quality = np.linspace(-1.0, 1.0, N_IMAGES)
    loadings = rng.normal(size=sum(BLOCKS))
    noise = rng.normal(scale=0.7, size=(N_IMAGES, sum(BLOCKS)))
    return (quality[:, None] * loadings + noise).astype(np.float32)


class CountingExtractor:
    """Stands in for ``FeatureExtractor``: its source records every read's size."""

    reads: list[int] = []
    takes: list[int] = []

    def __init__(self, *args: object) -> None:
        self.blocks = BLOCKS

    def fill(self, manifest: object, keys: list[str], progress: bool = True) -> None:
        assert len(keys) == N_IMAGES

    def source(self, keys: list[str]) -> FeatureSource:
        features = pool_features()

        def read(start: int, stop: int) -> np.ndarray:
            CountingExtractor.reads.append(stop - start)
            return features[start:stop]

        return FeatureSource(len(keys), features.shape[1], read, CHUNK)


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    csv, recorded = write_recorded_dataset(
        tmp_path, N_IMAGES, mos=lambda i: round(1 + 4 * i / N_IMAGES, 3),
        logit_good=lambda i: (i - N_IMAGES / 2) / 40 + (0.5 if i % 7 == 0 else 0.0),
        split=lambda i: "test" if i % 5 == 0 else "train", size=16)
    config = load_config(REPO / "configs" / "demo.yaml", {
        "data.kind": "csv", "data.path": str(csv), "data.split": None,
        "teacher.spec": f"qbench:{recorded}", "teacher.fallback": None,
        "teacher.pairs_per_image": 0, "output": str(tmp_path / "run"),
        "cache": str(tmp_path / "cache")})
    monkeypatch.setattr("leafiqa.experiments.workspace.FeatureExtractor", CountingExtractor)
    original_take = FeatureSource.take

    def counted_take(self: FeatureSource, rows: np.ndarray) -> np.ndarray:
        CountingExtractor.takes.append(int(np.asarray(rows).size))
        return original_take(self, rows)

    monkeypatch.setattr(FeatureSource, "take", counted_take)
    CountingExtractor.reads, CountingExtractor.takes = [], []
    return prepare(config, progress=False)


def leaf_path(ws: Workspace) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """What ``leaf run`` does with a workspace (``variance`` selection, LEAF with its
    estimate, the three baselines): each method's test predictions."""
    config: RunConfig = ws.config
    train_mos = ws.mos[ws.train_rows]
    n_labels = label_count(config.labels.budget, labelled_rows(train_mos).size)
    embedding = embed(ws.train_source)
    label_rows = select_among_labelled(train_mos, n_labels, strategy="variance",
                                       teacher_scores=ws.teacher_scores[ws.train_rows],
                                       seed=0, embedding=embedding)
    weights = representation_weights(embedding, label_rows)
    leaf = run_leaf(ws, label_rows, 0, estimate=True, weights=weights)
    assert leaf.estimate is not None
    out = {"LEAF": leaf.predictions, "estimate": np.array([leaf.estimate.srcc]),
           "teacher": run_teacher_alone(ws, label_rows).predictions,
           "probe": run_linear_probe(ws, label_rows).predictions,
           "labels only": run_labels_only(ws, label_rows).predictions}
    return out, label_rows


def test_the_workspace_path_reads_the_pool_in_chunks_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.stats import spearmanr

    # a pool "too big" for the labels-only baseline's PCA: it is fitted on a sample
    monkeypatch.setattr("leafiqa.experiments.labels_only.PCA_ROWS", 40)
    # the calibration's pool sample (a few labels' correction must keep its ranking): bounded
    monkeypatch.setattr("leafiqa.calibration.prior.POOL_SAMPLE_SIZE", 40)
    ws = workspace(tmp_path, monkeypatch)
    assert ws.train_rows.size > sum(BLOCKS)  # more images than features: the primal ridge
    predictions, label_rows = leaf_path(ws)
    assert CountingExtractor.reads and max(CountingExtractor.reads) <= CHUNK
    # gathered in memory: only the labelled rows, the test rows, the PCA's and the pool's
    # samples, or one chunk at a time
    bound = max(CHUNK, label_rows.size, ws.test_rows.size, 40)
    assert max(CountingExtractor.takes) <= bound < ws.train_rows.size
    assert "features" not in ws.__dict__  # the whole matrix was never built
    assert spearmanr(predictions["labels only"], ws.mos[ws.test_rows]).statistic > 0.5


def test_streamed_workspace_gives_what_the_in_memory_matrix_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    streamed = workspace(tmp_path, monkeypatch)
    full = pool_features()
    in_memory = Workspace(streamed.config, streamed.manifest, streamed.keys,
                          streamed.train_rows, streamed.test_rows,
                          FeatureSource.of(full, chunk_rows=10**6), streamed.mos,
                          streamed.teacher, streamed.feature_blocks)
    in_memory.__dict__["features"] = full
    got, labels = leaf_path(streamed)
    want, same_labels = leaf_path(in_memory)
    np.testing.assert_array_equal(labels, same_labels)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-8, err_msg=name)
    for mine, theirs in zip(streamed.scalers, in_memory.scalers, strict=True):
        np.testing.assert_allclose(mine.mean, theirs.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mine.std, theirs.std, rtol=1e-10)
    head = streamed.__dict__["_heads"]
    (one,) = head.values()
    np.testing.assert_allclose(streamed.predict(one), one.predict(full), rtol=1e-6, atol=1e-6)


def test_run_pipeline_on_a_streamed_workspace(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from leafiqa.experiments import pipeline

    ws = workspace(tmp_path, monkeypatch)
    monkeypatch.setattr(pipeline, "prepare", lambda config, progress: ws)
    # the model file needs the real backbone's width; these features are synthetic
    monkeypatch.setattr(pipeline, "save_student", lambda *args: tmp_path / "model")
    summary = pipeline.run_pipeline(ws.config, progress=False)
    assert summary["metrics"]["LEAF"]["srcc"] > 0.5
    assert max(CountingExtractor.reads) <= CHUNK

