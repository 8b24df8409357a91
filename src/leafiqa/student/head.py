"""The student's head: standardised multi-level features → one quality score."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class DistillFit:
    """How the head fits the teacher's judgments it was distilled from: what ``leaf distill``
    prints and the model file keeps in its notes (``distill``)."""

    images: int
    point_judgments: int
    pair_judgments: int  # the MLP head trains on them; the ridge head reads point-wise ones
    head: str  # ridge or mlp
    penalty: float | None  # the ridge's α, chosen by leave-one-out (inf: no feature used)
    in_sample: float  # SRCC of the head's scores with the teacher's, on the judged images
    # the same with each image scored without its own judgment: the ridge's exact
    # leave-one-out, the MLP's validation slice (None: no validation slice)
    out_of_sample: float | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        used = (f"{self.point_judgments} point-wise judgments (the ridge head reads no "
                f"pair-wise ones; {self.pair_judgments} stored)" if self.head == "ridge"
                else f"{self.point_judgments} point-wise and {self.pair_judgments} pair-wise "
                     "judgments")
        penalty = "" if self.penalty is None else f", penalty α {self.penalty:.3g} (leave-one-out)"
        held_out = ("" if self.out_of_sample is None else
                    f", {self.out_of_sample:.3f} " + ("leave-one-out" if self.head == "ridge"
                                                       else "on the validation slice"))
        return (f"distilled a {self.head} head on {self.images} images from {used}{penalty}; "
                f"agreement with the teacher: SRCC {self.in_sample:.3f} in-sample{held_out}")


_PCA_CACHE: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def pca_projection(features: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection) standardising features and projecting them on their top principal
    components, with one global scale (per-component whitening would blow up noise directions).
    Memoised per matrix: every head trained on the same images shares it."""
    digest = hashlib.sha1(np.ascontiguousarray(features, dtype=np.float32).data).hexdigest()
    cached = _PCA_CACHE.get((digest, components))
    if cached is not None:
        return cached
    centred = np.array(features, dtype=np.float64)  # our own copy, standardised in place
    mean = centred.mean(axis=0)
    std = centred.std(axis=0) + 1e-4
    centred -= mean
    centred /= std
    k = min(components, centred.shape[0] - 1, centred.shape[1])
    singular, vt = principal_axes(centred)
    scale = np.sqrt(np.mean(singular[:k] ** 2) / max(centred.shape[0] - 1, 1)) + 1e-6
    projection = np.zeros((features.shape[1], components))
    projection[:, :k] = (vt[:k].T / scale) / std[:, None]
    if len(_PCA_CACHE) > 32:
        _PCA_CACHE.clear()
    _PCA_CACHE[(digest, components)] = (mean, projection)
    return mean, projection


def principal_axes(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(singular values, right singular vectors as rows), largest first. With more rows than
    columns from the d×d scatter matrix's eigendecomposition — the SVD of a 20,000 × 7,104
    matrix would hold several copies of it — otherwise by the thin SVD."""
    n, d = centred.shape
    if n <= d:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        return singular, vt
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(eigenvalues)[::-1]
    return np.sqrt(np.clip(eigenvalues[order], 0.0, None)), vectors[:, order].T


class FastDropout(nn.Module):
    """Inverted dropout from a uniform mask: same maths as ``nn.Dropout`` but faster on CPU
    (torch's bernoulli_ dominates full-batch head training otherwise)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = 1.0 - self.p
        return x * (torch.rand_like(x) < keep).to(x.dtype) / keep


class QualityHead(nn.Module):
    """A small MLP (``hidden=0``: linear) on standardised, PCA-projected features. The fixed
    projection (fitted on unlabeled features) makes the head fast to train on 2 cores and hard
    to overfit; mean and projection are buffers, so they travel in the model file and ONNX."""

    feature_mean: torch.Tensor  # buffers, typed for the checker
    projection: torch.Tensor
    net: nn.Sequential

    def __init__(
        self, dim: int, hidden: int = 256, dropout: float = 0.1, components: int = 384
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.dropout, self.components = dim, hidden, dropout, components
        # the head's score of each image it was distilled on, predicted without that image (the
        # ridge head's exact leave-one-out; None for the MLP head): how the student scores an
        # image it never saw. Not part of the model file: it only means something in the run.
        self.out_of_sample: np.ndarray | None = None
        # how it fits the teacher's judgments (set by ``distill.distill_head``; not in the file)
        self.fit: DistillFit | None = None
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("projection", torch.eye(dim, components))
        if hidden > 0:
            self.net = nn.Sequential(
                FastDropout(dropout), nn.Linear(components, hidden), nn.GELU(),
                nn.Linear(hidden, 1),
            )
        else:
            self.net = nn.Sequential(FastDropout(dropout), nn.Linear(components, 1))

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "dropout": self.dropout,
                "components": self.components}

    def set_normalisation(self, features: np.ndarray) -> None:
        mean, projection = pca_projection(np.asarray(features), self.components)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.projection.copy_(torch.as_tensor(projection, dtype=torch.float32))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The fixed part: standardise and project. Training precomputes it once."""
        return (features - self.feature_mean) @ self.projection

    def score_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.net(embedded).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score_embedded(self.embed(features))

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.eval()
        with torch.inference_mode():
            return self(torch.as_tensor(features, dtype=torch.float32)).numpy()
