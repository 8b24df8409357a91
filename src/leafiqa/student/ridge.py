"""Ridge regression on frozen features with the penalty chosen by exact leave-one-out error.

Used three times: as the student's closed-form head (features → the teacher's log-odds,
``distill.ridge_head``), as the linear-probe baseline (features → MOS), and inside calibration,
where a ridge on the features corrects what the distilled student's mapped score gets wrong on
the labelled images. There the penalty grid includes infinity — "no correction" — so with a
handful of labels the correction switches itself off unless the labels themselves say it helps.
It lives with the student, the earliest stage that solves it: calibration imports the student,
never the reverse."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from leafiqa.errors import ConfigError

DEFAULT_ALPHAS = np.logspace(-1, 6, 29)
CHUNK_ROWS = 2048  # rows per chunk of a streamed pass (2,048 × 7,104 float64: 116 MB)


@dataclass
class FeatureSource:
    """The rows of a feature matrix, read in chunks: an array (or memory map) in memory, a
    feature store on disk, a synthetic pool. Lets the primal ridge see a pool of any size in
    bounded memory; ``read(start, stop)`` returns rows [start, stop) as an array."""

    n_rows: int
    n_features: int
    read: Callable[[int, int], np.ndarray]
    chunk_rows: int = CHUNK_ROWS

    @classmethod
    def of(cls, features: np.ndarray, rows: np.ndarray | None = None,
           chunk_rows: int = CHUNK_ROWS) -> FeatureSource:
        """``features`` (or its ``rows``, in that order) as a source."""
        if rows is None:
            return cls(features.shape[0], features.shape[1], lambda a, b: features[a:b],
                       chunk_rows)
        index = np.asarray(rows, dtype=np.int64)
        return cls(index.size, features.shape[1], lambda a, b: features[index[a:b]], chunk_rows)

    def subset(self, rows: np.ndarray) -> FeatureSource:
        """The source of ``rows`` only (in that order), read through ``take``."""
        index = np.asarray(rows, dtype=np.int64)
        if index.size == self.n_rows and np.array_equal(index, np.arange(self.n_rows)):
            return self
        return FeatureSource(index.size, self.n_features, lambda a, b: self.take(index[a:b]),
                             self.chunk_rows)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order) as one array in the source's own dtype, read window by
        window: no read spans more than ``chunk_rows`` rows, however far apart the rows are."""
        index = np.asarray(rows, dtype=np.int64)
        windows = index // self.chunk_rows
        order = np.argsort(windows, kind="stable")
        cuts = np.flatnonzero(np.diff(windows[order])) + 1
        out: np.ndarray | None = None
        for group in np.split(order, cuts) if index.size else []:
            start = int(windows[group[0]]) * self.chunk_rows
            block = np.asarray(self.read(start, min(start + self.chunk_rows, self.n_rows)))
            if out is None:
                out = np.empty((index.size, block.shape[1]), dtype=block.dtype)
            out[group] = block[index[group] - start]
        return out if out is not None else np.zeros((0, self.n_features))

    def array(self) -> np.ndarray:
        """Every row in memory (in the source's dtype), read chunk by chunk: for the paths that
        need the whole matrix (the dual ridge, the MLP head)."""
        if self.n_rows == 0:
            return np.zeros((0, self.n_features))
        return np.concatenate([np.asarray(self.read(start, min(start + self.chunk_rows,
                                                               self.n_rows)))
                               for start in range(0, self.n_rows, self.chunk_rows)])

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float64 rows) chunk by chunk."""
        for start in range(0, self.n_rows, self.chunk_rows):
            stop = min(start + self.chunk_rows, self.n_rows)
            yield start, np.asarray(self.read(start, stop), dtype=np.float64)

    def map(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``function`` of every row, applied chunk by chunk, the results' rows concatenated
        (scores or projections of a pool too big to hold whole)."""
        if self.n_rows == 0:
            return np.zeros(0)
        return np.concatenate([function(chunk) for _, chunk in self.chunks()])


@dataclass
class FeatureScaler:
    """Per-feature standardisation; fitted on every training image (labels are not needed).

    With ``blocks`` (the sizes of consecutive groups of features: each level's means, each
    level's standard deviations, per input size) every block gets an equal share of the ridge
    prior: its features are scaled by 1/√(block size / mean block size) after standardising, so
    the 1,280 channels of the head convolution count as much as the 24 of the first stage, not
    53 times more. ``std`` is the divisor: the feature's standard deviation over that scale."""

    mean: np.ndarray
    std: np.ndarray
    prior: str = "features"  # every feature an equal share; "blocks": every block

    @classmethod
    def fit(cls, features: np.ndarray, blocks: Sequence[int] | None = None) -> FeatureScaler:
        x = np.asarray(features, dtype=np.float64)
        std = x.std(axis=0) + 1e-6
        if blocks is None:
            return cls(x.mean(axis=0), std)
        return cls(x.mean(axis=0), std / block_scales(blocks, x.shape[1]), "blocks")

    @classmethod
    def fit_source(cls, source: FeatureSource, blocks: Sequence[int] | None = None
                   ) -> FeatureScaler:
        """``fit`` streamed over ``source``'s chunks (means and variances merged chunk by
        chunk, Chan et al.'s pairwise update, so no catastrophic cancellation)."""
        mean, std = source_moments(source)
        if blocks is None:
            return cls(mean, std)
        return cls(mean, std / block_scales(blocks, source.n_features), "blocks")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.std


def source_moments(source: FeatureSource) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation + 1e-6) of every feature, in one pass over the chunks."""
    count, mean, m2 = 0, np.zeros(source.n_features), np.zeros(source.n_features)
    for _, chunk in source.chunks():
        count, mean, m2 = _merge_moments(count, mean, m2, chunk)
    return mean, np.sqrt(m2 / max(count, 1)) + 1e-6


def feature_priors(features: np.ndarray | FeatureSource, blocks: Sequence[int] | None
                   ) -> list[FeatureScaler]:
    """The feature priors a ridge may be fitted under, the default first: every block of
    features an equal share (when the layout is known), then every feature an equal share.
    A ``FeatureSource`` is read in one streamed pass (the same scalers to float noise)."""
    if isinstance(features, FeatureSource):
        mean, std = source_moments(features)
        per_feature = FeatureScaler(mean, std)
        return ([FeatureScaler(mean, std / block_scales(blocks, features.n_features), "blocks")]
                if blocks else []) + [per_feature]
    per_feature = FeatureScaler.fit(features)
    return ([FeatureScaler.fit(features, blocks)] if blocks else []) + [per_feature]


def block_scales(blocks: Sequence[int], n_features: int) -> np.ndarray:
    """Per-feature scales giving each block the same total prior variance under a ridge."""
    sizes = np.asarray(blocks, dtype=np.int64)
    if sizes.sum() != n_features or (sizes <= 0).any():
        raise ValueError(f"feature blocks {list(blocks)} do not cover {n_features} features")
    per_feature = np.repeat(sizes, sizes).astype(np.float64)
    return 1.0 / np.sqrt(per_feature / sizes.mean())


@dataclass
class RidgeFit:
    """``y ≈ features @ coef + intercept`` (coef in the features' own units)."""

    coef: np.ndarray
    intercept: float
    alpha: float  # inf: the features are not used, the fit is the targets' mean
    loo_error: float  # mean squared leave-one-out error at ``alpha``
    loo_predictions: np.ndarray  # each training target predicted without itself

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.coef + self.intercept


@dataclass
class RidgeBasis:
    """What a leave-one-out ridge needs that does not depend on the targets: the images'
    standardised, centred (and weighted) features and the eigendecomposition of their n×n Gram
    matrix (far cheaper than an SVD when features outnumber images — 7,104 pyramid features,
    ≤ 2,386 images). Computed once per set of images, shared by every fit on them.

    With ``weights`` (e.g. judgment reliabilities) it is weighted least squares: each image's
    row and target are scaled by √w after centring on the weighted means."""

    scaler: FeatureScaler
    centre: np.ndarray  # the (weighted) mean of the standardised features
    weights: np.ndarray  # normalised to mean 1
    rows: np.ndarray  # √w · (standardised − centre)
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, scaler: FeatureScaler | None = None,
            weights: np.ndarray | None = None) -> RidgeBasis:
        scaler = scaler or FeatureScaler.fit(features)
        xs = scaler(features)
        w = np.ones(xs.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        w = w / w.mean()
        centre = (w[:, None] * xs).sum(axis=0) / w.sum()
        rows = np.sqrt(w)[:, None] * (xs - centre)
        eigenvalues, eigenvectors = np.linalg.eigh(rows @ rows.T)
        return cls(scaler, centre, w, rows, np.clip(eigenvalues, 0.0, None), eigenvectors)

    def feature_coef(self, dual: np.ndarray) -> np.ndarray:
        """A ridge's coefficients in the features' own units from its dual coefficients over
        the rows: ((x − mean)/std − centre) @ v = x @ (v/std) + const."""
        return (self.rows.T @ dual) / self.scaler.std

    def centre_value(self, coef: np.ndarray) -> float:
        """``features @ coef`` at the basis's (weighted) centre: the const above, which the
        intercept takes away."""
        return float((self.scaler.mean + self.centre * self.scaler.std) @ coef)


@dataclass
class PrimalRidgeBasis:
    """``RidgeBasis`` for more images than features: the eigendecomposition of the d×d matrix
    XᵀX of the rows (accumulated chunk by chunk in one pass, so its cost and memory are linear
    in n, not quadratic) instead of the n×n Gram matrix. The rows stay in ``source`` and are
    streamed again for each fit: the exact leave-one-out needs each image's leverage
    hᵢᵢ(α) = Σⱼ zᵢⱼ²/(sⱼ + α), z = the row in the eigenbasis, computed once per α grid.

    ``dtype`` is the precision of the two n·d² products (XᵀX per chunk, the rows times the
    eigenvectors); sums across chunks and everything else are float64. float32 takes less time
    at a small relative error in the leverages (benchmarks/bench_scale.py prints the difference
    it makes; docs/results/scale.md); the default float64 matches the dual form to float
    noise."""

    scaler: FeatureScaler
    centre: np.ndarray
    weights: np.ndarray  # normalised to mean 1
    source: FeatureSource
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    dtype: type = np.float64
    _leverages: dict[bytes, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(cls, source: FeatureSource, scaler: FeatureScaler | None = None,
            weights: np.ndarray | None = None, dtype: type = np.float64,
            blocks: Sequence[int] | None = None) -> PrimalRidgeBasis:
        """One pass over ``source``: the raw features' weighted second moments about a shift
        (the first chunk's mean, so nothing cancels catastrophically) and, without a
        ``scaler``, the per-feature means and variances that fit one (``blocks``: the block
        prior). Standardising is affine, so the standardised, centred XᵀX follows exactly."""
        w = (np.ones(source.n_rows) if weights is None
             else np.asarray(weights, dtype=np.float64))
        w = w / w.mean()
        d = source.n_features
        gram, weighted_sum = np.zeros((d, d)), np.zeros(d)
        shift: np.ndarray | None = None
        count, mean, m2 = 0, np.zeros(d), np.zeros(d)  # unweighted moments (the scaler's)
        for start, chunk in source.chunks():
            if shift is None:
                shift = chunk.mean(axis=0)
            x = chunk - shift
            w_chunk = w[start:start + x.shape[0]]
            weighted_sum += w_chunk @ x
            if scaler is None:
                count, mean, m2 = _merge_moments(count, mean, m2, x)
            rows = (x * np.sqrt(w_chunk)[:, None]).astype(dtype, copy=False)
            gram += rows.T @ rows
        assert shift is not None, "a ridge basis needs at least one row"
        if scaler is None:
            std = np.sqrt(m2 / count) + 1e-6
            scaler = (FeatureScaler(mean + shift, std) if blocks is None else
                      FeatureScaler(mean + shift, std / block_scales(blocks, d), "blocks"))
        # weighted mean of x − shift, then Σ wᵢ(xᵢ − m)(xᵢ − m)ᵀ = Σ wᵢ(xᵢ−p)(xᵢ−p)ᵀ − W·(m−p)(m−p)ᵀ
        offset = weighted_sum / w.sum()
        gram -= w.sum() * np.outer(offset, offset)
        gram /= scaler.std[:, None]
        gram /= scaler.std[None, :]
        centre = (offset + shift - scaler.mean) / scaler.std
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        del gram
        return cls(scaler, centre, w, source, np.clip(eigenvalues, 0.0, None), eigenvectors,
                   dtype)

    def row_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, √w · (standardised − centre)) chunk by chunk: the dual's ``rows``."""
        for start, chunk in self.source.chunks():
            rows = self.scaler(chunk) - self.centre
            rows *= np.sqrt(self.weights[start:start + rows.shape[0]])[:, None]
            yield start, rows

    def project(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the eigenbasis (z), in ``dtype``: the n·d² product of a fit."""
        vectors: np.ndarray = self.eigenvectors.astype(self.dtype, copy=False)
        return np.asarray(rows.astype(self.dtype, copy=False) @ vectors, dtype=np.float64)

    def centre_value(self, coef: np.ndarray) -> float:
        return float((self.scaler.mean + self.centre * self.scaler.std) @ coef)


def _merge_moments(count: int, mean: np.ndarray, m2: np.ndarray, chunk: np.ndarray
                   ) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (count, mean, sum of squared deviations)."""
    n_b = chunk.shape[0]
    mean_b = chunk.mean(axis=0)
    m2_b = ((chunk - mean_b) ** 2).sum(axis=0)
    total = count + n_b
    delta = mean_b - mean
    return (total, mean + delta * (n_b / total), m2 + m2_b + delta**2 * (count * n_b / total))


def ridge_basis(source: FeatureSource, scaler: FeatureScaler | None = None,
                weights: np.ndarray | None = None, form: str = "auto"
                ) -> RidgeBasis | PrimalRidgeBasis:
    """The ridge basis in the form the shape asks for (``form="auto"``): the dual (n×n Gram
    matrix) when images are fewer than features, the primal (d×d) otherwise; both give the same
    fits to float noise. ``form`` forces one ("dual", "primal")."""
    if form == "auto":
        form = "dual" if source.n_rows <= source.n_features else "primal"
    if form == "primal":
        return PrimalRidgeBasis.fit(source, scaler, weights)
    if form != "dual":
        raise ConfigError(f"ridge form: expected auto, dual or primal, got '{form}'")
    return RidgeBasis.fit(source.array(), scaler, weights)


def _fit_ridge_loo_primal(basis: PrimalRidgeBasis, y: np.ndarray, alphas: np.ndarray,
                          allow_none: bool) -> RidgeFit:
    """Two passes: Xᵀy, then each row in the eigenbasis for its fitted values and leverages
    at every α (the leverages are kept for the next fit on the same grid)."""
    w = basis.weights
    y_mean = float((w * y).sum() / w.sum())
    root_w = np.sqrt(w)
    centred = root_w * (y - y_mean)
    xty = np.zeros(basis.source.n_features)
    for start, rows in basis.row_chunks():
        xty += centred[start:start + rows.shape[0]] @ rows
    shrunk = (basis.eigenvectors.T @ xty)[:, None] / (
        basis.eigenvalues[:, None] + alphas[None, :])  # every α's coefficients, eigenbasis
    key = alphas.tobytes()
    leverages = basis._leverages.get(key)
    fitted = np.empty((y.size, alphas.size))
    if leverages is None:
        inverse = 1.0 / (basis.eigenvalues[:, None] + alphas[None, :])
        leverages = np.empty((y.size, alphas.size))
        for start, rows in basis.row_chunks():
            z = basis.project(rows)
            fitted[start:start + z.shape[0]] = z @ shrunk
            leverages[start:start + z.shape[0]] = (z * z) @ inverse
        basis._leverages = {key: leverages}  # one grid kept: memory stays O(n · grid)
    else:
        betas = basis.eigenvectors @ shrunk
        for start, rows in basis.row_chunks():
            fitted[start:start + rows.shape[0]] = rows @ betas
    intercept_leverage = w / w.sum()
    errors = np.empty(alphas.size)
    for column in range(alphas.size):  # column by column: no third n × grid array
        fitted[:, column] = (centred - fitted[:, column]) / np.clip(
            1.0 - leverages[:, column] - intercept_leverage, 1e-6, None)
        errors[column] = np.mean(fitted[:, column] ** 2)
    residuals = fitted
    best_residual = centred / np.clip(1.0 - intercept_leverage, 1e-6, None)
    best_error = float(np.mean(best_residual**2)) if allow_none else np.inf
    best_column = -1
    for column, error in enumerate(errors):  # the first α reaching the lowest error (as dual)
        if error < best_error:
            best_column, best_error = column, float(error)
    if best_column >= 0:
        best_residual = residuals[:, best_column]
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_predictions = np.where(w > 0, y - best_residual / root_w, np.nan)
    best_alpha = np.inf if best_column < 0 else float(alphas[best_column])
    coef = (np.zeros(basis.source.n_features) if best_column < 0
            else basis.eigenvectors @ shrunk[:, best_column] / basis.scaler.std)
    intercept = y_mean - basis.centre_value(coef)
    return RidgeFit(coef, intercept, best_alpha, best_error, loo_predictions)


def fit_ridge_loo(
    basis: RidgeBasis | PrimalRidgeBasis,
    targets: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    allow_none: bool = False,
) -> RidgeFit:
    """Ridge on ``basis``'s images with the penalty picked by exact (weighted) leave-one-out
    error; ``allow_none`` adds α = ∞ (predict the targets' mean) to the grid."""
    y = np.asarray(targets, dtype=np.float64)
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    if isinstance(basis, PrimalRidgeBasis):
        return _fit_ridge_loo_primal(basis, y, alphas, allow_none)
    u, s2, w = basis.eigenvectors, basis.eigenvalues, basis.weights
    y_mean = float((w * y).sum() / w.sum())
    root_w = np.sqrt(w)
    centred = root_w * (y - y_mean)
    uty = u.T @ centred
    intercept_leverage = w / w.sum()
    # leave-one-out residuals of the √w-scaled problem; their mean square is the weighted error
    # (images of weight 0 add nothing to it and get no leave-one-out prediction)
    best_alpha = np.inf
    best_residual = centred / np.clip(1.0 - intercept_leverage, 1e-6, None)
    best_error = float(np.mean(best_residual**2)) if allow_none else np.inf
    for alpha in alphas:
        shrink = s2 / (s2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2 * shrink).sum(axis=1) + intercept_leverage
        residual = (centred - fitted) / np.clip(1.0 - leverage, 1e-6, None)
        error = float(np.mean(residual**2))
        if error < best_error:
            best_alpha, best_error, best_residual = float(alpha), error, residual
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_predictions = np.where(w > 0, y - best_residual / root_w, np.nan)
    coef = (np.zeros(basis.rows.shape[1]) if np.isinf(best_alpha)
            else basis.feature_coef(u @ (uty / (s2 + best_alpha))))
    intercept = y_mean - basis.centre_value(coef)
    return RidgeFit(coef, intercept, best_alpha, best_error, loo_predictions)


@dataclass
class CovariateRidgeFit:
    """``y ≈ covariate_coef · covariate + ridge(features)``: a ridge on the features beside one
    unpenalised covariate (and the intercept), fitted jointly; ``ridge`` carries the intercept."""

    covariate_coef: float
    ridge: RidgeFit

    def __call__(self, covariate: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self.covariate_coef * np.asarray(covariate, dtype=np.float64) + self.ridge(features)


def fit_ridge_loo_covariate(
    basis: RidgeBasis,
    targets: np.ndarray,
    covariate: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    allow_none: bool = True,
) -> CovariateRidgeFit | None:
    """Ridge on ``basis``'s images with ``covariate`` unpenalised, the penalty picked by exact
    leave-one-out error (``allow_none``: α = ∞, the covariate's line alone, is on the grid).
    Reuses the basis's eigendecomposition: an unpenalised covariate is the limit of a feature
    with infinite prior variance, a rank-one term in the Gram matrix handled by Sherman–Morrison,
    so the whole path costs O(n²) per α. None when the covariate is constant over the images."""
    y = np.asarray(targets, dtype=np.float64)
    z = np.asarray(covariate, dtype=np.float64)
    u, s2, w = basis.eigenvectors, basis.eigenvalues, basis.weights
    root_w = np.sqrt(w)
    y_mean, z_mean = float((w * y).sum() / w.sum()), float((w * z).sum() / w.sum())
    yc, zc = root_w * (y - y_mean), root_w * (z - z_mean)
    if float(zc @ zc) < 1e-12 * max(float(yc @ yc), 1e-12):
        return None
    intercept_leverage = w / w.sum()
    uty, utz = u.T @ yc, u.T @ zc
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    # α = ∞: the covariate's line alone (B → (I − ẑẑ')/α, so α·B is that projection)
    line_residual = yc - zc * (zc @ yc) / (zc @ zc)
    line_diag = 1.0 - zc**2 / (zc @ zc) - intercept_leverage
    loo = line_residual / np.clip(line_diag, 1e-6, None)
    best = (float(np.mean(loo**2)) if allow_none else np.inf, np.inf, np.zeros_like(yc), loo)
    for alpha in alphas:
        inverse = 1.0 / (s2 + alpha)  # (K + αI)⁻¹ = U diag(1/(λ+α)) U'
        p, q = u @ (inverse * utz), u @ (inverse * uty)
        dual = q - p * (zc @ q) / (zc @ p)  # the limit of (K + c²zz' + αI)⁻¹ y as c → ∞
        diag = (u**2 @ inverse) - p**2 / (zc @ p)
        loo = alpha * dual / np.clip(alpha * diag - intercept_leverage, 1e-6, None)
        error = float(np.mean(loo**2))
        if error < best[0]:
            best = (error, float(alpha), dual, loo)
    error, alpha, dual, loo = best
    coef = np.zeros(basis.rows.shape[1]) if np.isinf(alpha) else basis.feature_coef(dual)
    # given the features' part, the covariate's coefficient is its least-squares slope
    fitted_ridge = basis.rows @ (coef * basis.scaler.std)
    covariate_coef = float(zc @ (yc - fitted_ridge) / (zc @ zc))
    intercept = y_mean - covariate_coef * z_mean - basis.centre_value(coef)
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_predictions = np.where(w > 0, y - loo / root_w, np.nan)
    return CovariateRidgeFit(covariate_coef,
                             RidgeFit(coef, intercept, alpha, error, loo_predictions))


def fit_ridge(features: np.ndarray, targets: np.ndarray, alphas: np.ndarray | None = None
              ) -> RidgeFit:
    """The linear-probe baseline: features → targets, penalty by leave-one-out."""
    return fit_ridge_loo(RidgeBasis.fit(features), targets, alphas)
