"""A LEAF model as a pyiqa-style metric: ``create_metric(name)(images)`` → scores on the
model's MOS scale, and with ``as_loss=True`` a differentiable torch loss.

Tensors are read in torch end to end (resize, normalisation, backbone, head and calibration),
so gradients reach the input pixels. Files, folders, bytes, PIL images and arrays take the one
path every entry point takes (``data.pixels.input_pixels``: files and bytes decoded for the
model's sizes, a large JPEG at a reduced DCT scale; other in-memory inputs converted by
``image_from_any``; all resized by PIL): the same scores as ``leaf score``. A
folder or list is decoded and scored batch by batch, never held decoded all at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from leafiqa.data.images import IMAGENET_MEAN, IMAGENET_STD
from leafiqa.data.pixels import iter_pixel_batches
from leafiqa.errors import ConfigError, DataError
from leafiqa.model.file import load_network
from leafiqa.model.onnx_export import PixelInputs
from leafiqa.model.registry import resolve_model

ImageInput = str | Path | bytes | Image.Image | np.ndarray | torch.Tensor


def image_files(folder: str | Path) -> list[Path]:
    """The images a folder holds, in the order a metric scores them."""
    from leafiqa.data.readers import IMAGE_SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def flatten_inputs(target: object) -> list[object]:
    """One input or a list of them → the images to score, in order, not yet decoded: a folder
    becomes its image files; paths, bytes, PIL images, arrays and tensors stay as they are
    (each is decoded by ``image_from_any`` when its batch is scored)."""
    if isinstance(target, (str, Path)):
        path = Path(target)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise DataError(f"{path}: no image files found")
            return list(files)
        return [path]
    if isinstance(target, (bytes, bytearray, memoryview, Image.Image, np.ndarray)) or \
            torch.is_tensor(target):
        return [target]
    if isinstance(target, Sequence):
        return [image for item in target for image in flatten_inputs(item)]
    raise TypeError(f"cannot score a {type(target).__name__}: give a path, folder, bytes, PIL "
                    "image, numpy array, (B, 3, H, W) tensor in [0, 1] or a list of them")


class LeafMetric(nn.Module):
    """Same interface as ``pyiqa``'s ``InferenceModel``: ``metric(target)`` → (B,) scores,
    ``lower_better``, ``score_range``, ``metric_mode`` ``NR``, ``device``; ``as_loss=True``
    keeps the graph and returns the scores reduced by ``loss_reduction`` (× ``loss_weight``).
    LEAF scores are higher-better MOS, so a loss to minimise is ``-metric(x)``."""

    mean: torch.Tensor  # buffers, typed for the checker
    std: torch.Tensor

    def __init__(
        self,
        metric_name: str | Path = "leaf-agiqa3k",
        as_loss: bool = False,
        loss_weight: float | None = None,
        loss_reduction: str = "mean",
        device: str | torch.device | None = None,
        seed: int = 123,
        check_input_range: bool = True,
        batch_size: int = 32,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if loss_reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"loss_reduction: 'mean', 'sum' or 'none', got {loss_reduction!r}")
        self.model_path = resolve_model(metric_name)
        self.net, self.info = load_network(self.model_path)
        self.net.requires_grad_(False)
        self.metric_name = str(self.info.card.get("name") or self.model_path.stem)
        self.metric_mode = "NR"
        self.lower_better = False
        self.score_range = self.info.score_range
        self.as_loss = as_loss
        self.loss_weight = loss_weight
        self.loss_reduction = loss_reduction
        self.seed = seed
        self.check_input_range = check_input_range and not as_loss
        self.batch_size = batch_size
        self.progress = progress
        self.pixel_inputs = PixelInputs(self.net)
        self.register_buffer("mean", torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1))
        self.device = torch.device(device) if device else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.to(self.device)
        self.eval()

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return self.info.input_sizes

    def _levels_from_tensor(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise DataError(f"expected a (B, 3, H, W) or (B, 1, H, W) tensor, got shape "
                            f"{tuple(x.shape)}")
        if x.numel() == 0:
            raise DataError(f"empty image tensor (shape {tuple(x.shape)})")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise DataError(f"image tensor: {bad} pixel value(s) are NaN or infinite")
        if self.check_input_range and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
            raise DataError(f"input must be in [0, 1], got {x.min().item():.4f} to "
                            f"{x.max().item():.4f}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        levels = []
        for size in self.input_sizes:
            resized = x if tuple(x.shape[-2:]) == (size, size) else F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            levels.append((resized - self.mean) / self.std)
        return levels

    def _score_inputs(self, items: list[object]) -> torch.Tensor:
        """Decode and score batch by batch (decoding threads run one batch ahead), with a
        progress bar when there is more than one batch."""
        from tqdm.auto import tqdm

        scores = []
        with tqdm(total=len(items), unit="img", desc=self.metric_name,
                  disable=not self.progress or len(items) <= self.batch_size) as bar:
            for batch in iter_pixel_batches(items, self.input_sizes, self.batch_size):
                if batch.failures:
                    raise DataError(batch.failures[0][1])
                scores.append(self.pixel_inputs(*(torch.from_numpy(level).to(self.device)
                                                  for level in batch.pixels)))
                bar.update(len(batch.indices))
        return torch.cat(scores) if scores else torch.zeros(0, device=self.device)

    def forward(self, target: ImageInput | Sequence[ImageInput], ref: object = None,
                **kwargs: object) -> torch.Tensor:
        """Scores (B,) on the model's MOS scale; a tensor input keeps its gradient when
        ``as_loss``."""
        if ref is not None:
            raise ConfigError(f"{self.metric_name} is a no-reference metric: no 'ref' image")
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s) {sorted(kwargs)}")
        with torch.set_grad_enabled(self.as_loss):
            if isinstance(target, torch.Tensor):
                scores = self.net(*self._levels_from_tensor(target))
            elif (isinstance(target, Sequence) and target and not isinstance(target, str)
                  and all(torch.is_tensor(t) for t in target)):
                scores = torch.cat([self.net(*self._levels_from_tensor(t)) for t in target
                                    if isinstance(t, torch.Tensor)])  # all are
            else:
                scores = self._score_inputs(flatten_inputs(target))
        if not self.as_loss:
            return scores
        weighted = scores * (1.0 if self.loss_weight is None else self.loss_weight)
        if self.loss_reduction == "mean":
            return weighted.mean()
        return weighted.sum() if self.loss_reduction == "sum" else weighted


def create_metric(metric_name: str | Path = "leaf-agiqa3k", as_loss: bool = False,
                  device: str | torch.device | None = None, **kwargs: object) -> LeafMetric:
    """``pyiqa.create_metric`` for LEAF models: a registered name (``leafiqa.list_models()``)
    or a model file path."""
    return LeafMetric(metric_name, as_loss=as_loss, device=device, **kwargs)  # type: ignore[arg-type]
