"""Which images get a human MOS label, and in which order to ask for them.

Every strategy picks from a pool of candidates, optionally after some are already labelled
(``labelled``: a round of a sequential study picks the next ones given those), and returns the
new picks in the order to ask. Strategies:

- ``random``: a uniform draw.
- ``spread``: teacher-stratified — the unlabelled images split into equal-count bins of the
  teacher's score, one image drawn from each, so labels cover the whole quality range.
- ``kcenter``: diversity — greedy farthest-first traversal in a PCA of the features (starting
  from the labelled images, or one random image). Picks outliers at tiny budgets.
- ``variance``: model-based, aimed at what calibration fits — a Bayesian linear model of MOS on
  the teacher's score (the calibration line) and the PCA of the features (the correction ridge);
  each pick greedily removes the most posterior variance summed over *every* pool image (a
  transductive, V-optimal design), so it prefers images that are both informative and typical,
  not the outliers k-center finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from leafiqa.data.splits import labelled_rows
from leafiqa.errors import ConfigError, DataError

STRATEGIES = ("random", "spread", "kcenter", "variance")
#: dimensions of the feature PCA the diversity and model-based designs work in
EMBED_DIMS = 32
#: the variance design's noise, relative to the prior variance of the correction's signal
VARIANCE_NOISE = 1.0
#: prior variance of the calibration line's slope on the (standardised) teacher score,
#: relative to the correction's: the line is what a few labels must pin down first
LINE_PRIOR = 4.0
#: the variance design caps each image's embedding norm at this quantile of the pool's
OUTLIER_QUANTILE = 0.9


class RowChunks(Protocol):
    """Rows of a feature matrix read in chunks (``student.ridge.FeatureSource`` is one; it is
    named here by shape only, the student being a later stage)."""

    n_rows: int
    n_features: int
    chunk_rows: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


def embed(features: np.ndarray | RowChunks, dims: int = EMBED_DIMS) -> np.ndarray:
    """The pool's standardised features projected on their first ``dims`` principal axes
    (scores, not whitened: distances keep the features' own geometry). Rows read in chunks
    (``RowChunks``) are never held whole: see ``_embed_chunks``."""
    if not isinstance(features, np.ndarray):
        return _embed_chunks(features, dims)
    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    # the n×n Gram matrix is cheaper than an SVD when features outnumber images
    eigenvalues, eigenvectors = np.linalg.eigh(x @ x.T)
    order = np.argsort(eigenvalues)[::-1][: min(dims, x.shape[0])]
    return eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))


def _embed_chunks(source: RowChunks, dims: int) -> np.ndarray:
    """``embed`` over chunked rows in O(min(n, d)² + chunk·d + n·dims) memory: the same
    principal scores (to float noise and each axis's sign, which no design depends on) from
    the n×n Gram matrix built block by block while images are fewer than features (as the
    in-memory path), else from the d×d scatter matrix, with the rows projected chunk by chunk."""
    n, step = source.n_rows, source.chunk_rows
    starts = range(0, n, step)

    def rows(start: int) -> np.ndarray:
        return np.asarray(source.read(start, min(start + step, n)), dtype=np.float64)

    mean = sum((rows(a).sum(axis=0) for a in starts), np.zeros(source.n_features)) / n
    # the spread about the exact mean (two passes, as numpy's std)
    spread = sum((((rows(a) - mean) ** 2).sum(axis=0) for a in starts),
                 np.zeros(source.n_features))
    std = np.sqrt(spread / n) + 1e-6

    def standardised(start: int) -> np.ndarray:
        return (rows(start) - mean) / std

    if n <= source.n_features:
        gram = np.empty((n, n))
        for a in starts:
            block = standardised(a)
            for b in starts:
                if b >= a:
                    product = block @ standardised(b).T if b > a else block @ block.T
                    gram[a:a + block.shape[0], b:b + product.shape[1]] = product
                    gram[b:b + product.shape[1], a:a + block.shape[0]] = product.T
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        order = np.argsort(eigenvalues)[::-1][: min(dims, n)]
        return eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    scatter = np.zeros((source.n_features, source.n_features))
    for a in starts:
        block = standardised(a)
        scatter += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(scatter)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:dims]]
    return np.concatenate([standardised(a) @ axes for a in starts])


def select_order(
    n_candidates: int,
    n_new: int,
    *,
    strategy: str = "random",
    teacher_scores: Sequence[float] | np.ndarray | None = None,
    features: np.ndarray | None = None,
    labelled: Sequence[int] | np.ndarray = (),
    seed: int = 0,
    embedding: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices of the next ``n_new`` images to label out of ``n_candidates``, in the order
    to ask, given the ``labelled`` ones (never picked again). ``embedding`` (``embed`` of the
    features, computed once for many selections) may stand in for ``features``."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown label selection '{strategy}'; choose from {STRATEGIES}")
    done = np.unique(np.asarray(labelled, dtype=np.int64))
    if done.size and (done.min() < 0 or done.max() >= n_candidates):
        raise ValueError("labelled rows out of range of the candidates")
    free = np.setdiff1d(np.arange(n_candidates), done)
    n_new = min(max(n_new, 0), free.size)
    if n_new == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return rng.choice(free, size=n_new, replace=False)
    if teacher_scores is None or len(teacher_scores) != n_candidates:
        raise DataError(f"label selection '{strategy}' needs a teacher score for every "
                        "candidate")
    scores = np.asarray(teacher_scores, dtype=np.float64)
    missing = np.isnan(scores)
    if missing.all() or (strategy == "spread" and missing.any()):
        raise DataError(f"label selection '{strategy}' needs a teacher score for every "
                        "candidate; some have none")
    # the variance design reads an image the teacher did not judge as an average one
    scores = np.where(missing, np.nanmean(scores), scores)
    if strategy == "spread":
        order = free[np.argsort(scores[free], kind="stable")]
        picks = np.array([rng.choice(b) for b in np.array_split(order, n_new)], dtype=np.int64)
        return rng.permutation(picks)
    z = embedding if embedding is not None else None if features is None else embed(features)
    if z is None or len(z) != n_candidates:
        raise DataError(f"label selection '{strategy}' needs the features of every candidate")
    if strategy == "kcenter":
        return _kcenter(z, done, n_new, rng)
    return _variance(z, scores, done, n_new)


def select_labels(
    n_candidates: int,
    n_labels: int,
    *,
    strategy: str = "random",
    teacher_scores: Sequence[float] | np.ndarray | None = None,
    features: np.ndarray | None = None,
    seed: int = 0,
    embedding: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices (sorted) of ``n_labels`` images to label out of ``n_candidates`` in one go
    (``select_order`` with nothing labelled yet)."""
    if n_labels >= n_candidates:
        return np.arange(n_candidates)
    return np.sort(select_order(n_candidates, n_labels, strategy=strategy,
                                teacher_scores=teacher_scores, features=features, seed=seed,
                                embedding=embedding))


def select_rounds(
    n_candidates: int,
    round_sizes: Sequence[int],
    *,
    strategy: str = "random",
    teacher_scores: Sequence[float] | np.ndarray | None = None,
    features: np.ndarray | None = None,
    seed: int = 0,
    embedding: np.ndarray | None = None,
) -> np.ndarray:
    """Labels that arrive in rounds: each round picks its images given every earlier one (the
    sequential study ``leaf select --labels`` runs). Sorted row indices of all rounds."""
    if embedding is None and features is not None:
        embedding = embed(features)
    done = np.zeros(0, dtype=np.int64)
    for k, size in enumerate(round_sizes):
        new = select_order(n_candidates, size, strategy=strategy, teacher_scores=teacher_scores,
                           embedding=embedding, labelled=done, seed=seed + 1000 * k)
        done = np.concatenate([done, new])
    return np.sort(done)


def _kcenter(z: np.ndarray, done: np.ndarray, n_new: int,
             rng: np.random.Generator) -> np.ndarray:
    picks: list[int] = []
    if done.size:
        distance = np.min([((z - z[i]) ** 2).sum(axis=1) for i in done], axis=0)
    else:
        first = int(rng.integers(z.shape[0]))
        picks.append(first)
        distance = ((z - z[first]) ** 2).sum(axis=1)
    while len(picks) < n_new:
        nxt = int(np.argmax(distance))
        picks.append(nxt)
        distance = np.minimum(distance, ((z - z[nxt]) ** 2).sum(axis=1))
    return np.array(picks, dtype=np.int64)


def _variance(z: np.ndarray, scores: np.ndarray, done: np.ndarray, n_new: int) -> np.ndarray:
    """Greedy V-optimal design for ``MOS ≈ a + b·teacher + w·z`` with Gaussian priors."""
    teacher = (scores - scores.mean()) / (scores.std() + 1e-12)
    # an outlier's own predictive variance would pull the design to it (what k-center does):
    # each image's embedding is shrunk to at most the pool's 90th-percentile norm
    norms = np.sqrt((z**2).sum(axis=1))
    cap = max(float(np.quantile(norms, OUTLIER_QUANTILE)), 1e-12)
    zs = z * np.minimum(1.0, cap / np.maximum(norms, 1e-12))[:, None]
    zs = zs / np.sqrt(max(float((zs**2).sum(axis=1).mean()), 1e-12))  # E‖z‖² = 1
    design = np.column_stack([np.ones_like(teacher), teacher, zs])
    prior = np.concatenate([[100.0, LINE_PRIOR], np.ones(zs.shape[1])])
    cov = np.diag(prior)
    noise = VARIANCE_NOISE
    for i in done:
        x = design[i]
        cx = cov @ x
        cov -= np.outer(cx, cx) / (noise + x @ cx)
    pool_moment = design.T @ design / design.shape[0]
    taken = np.zeros(design.shape[0], dtype=bool)
    taken[done] = True
    picks: list[int] = []
    for _ in range(n_new):
        projected = design @ cov  # rows: Σx for every candidate
        gain = np.einsum("ij,jk,ik->i", projected, pool_moment, projected)
        gain /= noise + np.einsum("ij,ij->i", projected, design)
        gain[taken] = -np.inf
        nxt = int(np.argmax(gain))
        picks.append(nxt)
        taken[nxt] = True
        cx = projected[nxt]
        cov -= np.outer(cx, cx) / (noise + design[nxt] @ cx)
    return np.array(picks, dtype=np.int64)


#: strategies whose labelled images are a (stratified) random sample of the pool: their
#: estimate needs no re-weighting (``spread`` draws one image per equal-count bin)
SELF_WEIGHTING = ("random", "spread")
#: each pool image is shared among this many nearest labelled images: with one (Voronoi cells)
#: in a 32-d embedding a few images' cells decide the estimate, which then strays from the
#: test SRCC; sharing smooths the counts (scripts/estimate_weighting.py compares them;
#: docs/results/estimate.md)
REPRESENTATION_NEIGHBOURS = 5
WEIGHT_CHUNK_ROWS = 8192


def representation_weights(embedding: np.ndarray, labelled: Sequence[int] | np.ndarray,
                           neighbours: int = REPRESENTATION_NEIGHBOURS) -> np.ndarray:
    """How many pool images each labelled one stands for, normalised to mean 1: deliberately
    chosen labels re-weighted to represent the pool (an outlier k-center picked stands for
    few). Each pool image is shared equally among its ``neighbours`` nearest labelled images in
    ``embedding`` (1: the labelled image's Voronoi cell); a labelled image stands at least for
    itself."""
    rows = np.asarray(labelled, dtype=np.int64)
    z = np.asarray(embedding, dtype=np.float64)
    k = max(1, min(neighbours, rows.size))
    anchors = z[rows]
    anchor_squared = (anchors**2).sum(axis=1)
    counts = np.zeros(rows.size)
    for start in range(0, z.shape[0], WEIGHT_CHUNK_ROWS):  # a pool of any size
        block = z[start:start + WEIGHT_CHUNK_ROWS]
        distance = (block**2).sum(axis=1)[:, None] - 2 * block @ anchors.T + anchor_squared
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        counts += np.bincount(nearest.ravel(), minlength=rows.size)
    counts = np.maximum(counts / k, 1.0)
    return counts / counts.mean()


def select_among_labelled(train_mos: np.ndarray, n_labels: int, *, strategy: str = "random",
                          teacher_scores: np.ndarray | None = None, seed: int = 0,
                          features: np.ndarray | None = None,
                          embedding: np.ndarray | None = None) -> np.ndarray:
    """``select_labels`` restricted to the training images that have a MOS: positions into the
    training rows. With every image labelled it is ``select_labels`` itself. ``features`` /
    ``embedding``: of every training row (the designs that need them)."""
    pool = labelled_rows(train_mos)
    scores = None if teacher_scores is None else np.asarray(teacher_scores)[pool]
    picked = select_labels(pool.size, min(n_labels, pool.size), strategy=strategy,
                           teacher_scores=scores, seed=seed,
                           features=None if features is None else np.asarray(features)[pool],
                           embedding=None if embedding is None else np.asarray(embedding)[pool])
    return pool[picked]
