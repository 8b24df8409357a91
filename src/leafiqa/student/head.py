"""The student's head: standardised multi-level features → one quality score."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class QualityHead(nn.Module):
    """A small MLP (``hidden=0``: linear) on standardised features. Feature mean/std are buffers,
    so they travel inside the model file and the ONNX graph."""

    def __init__(
        self, dim: int, hidden: int = 256, dropout: float = 0.1, components: int = 384
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.dropout, self.components = dim, hidden, dropout, components
        self.register_buffer("feature_mean", torch.zeros(dim))
        # Standardisation and a whitened PCA projection fitted on unlabeled features: a fixed
        # linear map that makes the small head fast to train on 2 cores and hard to overfit.
        self.register_buffer("projection", torch.eye(dim, components))
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(components, hidden), nn.GELU(),
                nn.Linear(hidden, 1),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(components, 1))

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "dropout": self.dropout,
                "components": self.components}

    def set_normalisation(self, features: np.ndarray) -> None:
        """Fit the standardisation + whitened PCA on (unlabeled) features."""
        features = np.asarray(features, dtype=np.float64)
        mean = features.mean(axis=0)
        std = features.std(axis=0) + 1e-4
        centred = (features - mean) / std
        k = min(self.components, centred.shape[0] - 1, centred.shape[1])
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        # One global scale (not per-component whitening, which blows up noise directions).
        scale = np.sqrt(np.mean(singular[:k] ** 2) / max(centred.shape[0] - 1, 1)) + 1e-6
        projection = np.zeros((features.shape[1], self.components))
        projection[:, :k] = (vt[:k].T / scale) / std[:, None]
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
