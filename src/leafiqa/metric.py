"""A LEAF model as a pyiqa-style metric: ``create_metric(name)(images)`` → scores on the
model's MOS scale, and with ``as_loss=True`` a differentiable torch loss.

Tensors are read in torch end to end (resize, normalisation, backbone, head and calibration),
so gradients reach the input pixels. Files, PIL images and arrays are decoded and resized with
PIL exactly as ``leaf score`` does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from leafiqa.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    open_rgb,
    to_model_inputs,
)
from leafiqa.data.loader import stack_levels
from leafiqa.data.manifest import DataError
from leafiqa.deploy.modelfile import load_network
from leafiqa.registry import resolve_model

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


def image_files(folder: str | Path) -> list[Path]:
    """The images a folder holds, in the order a metric scores them."""
    from leafiqa.data.readers import IMAGE_SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def array_to_rgb(array: np.ndarray, label: str = "array") -> Image.Image:
    """HxW, HxWxC or CxHxW arrays of any integer dtype (full range of the dtype) or float in
    [0, 1] → an 8-bit RGB image; an alpha channel is dropped."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise DataError(f"{label}: expected an HxW, HxWx3/4 or 3xHxW image, got shape "
                        f"{array.shape}")
    if array.ndim == 3:
        array = array[..., :3]
    if array.dtype == np.bool_:
        unit = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.min < 0 and array.min() < 0:
            raise DataError(f"{label}: negative pixel values in a {array.dtype} image")
        unit = array.astype(np.float64) / info.max
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise DataError(f"{label}: a float image must hold values in [0, 1] "
                            f"(got {np.nanmin(array):.4g} to {np.nanmax(array):.4g})")
        unit = array.astype(np.float64)
    else:
        raise DataError(f"{label}: unsupported pixel dtype {array.dtype}")
    pixels = np.round(unit * 255.0).astype(np.uint8)
    image = Image.fromarray(pixels)
    return image.convert("RGB")


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → RGB; 16-bit and float modes are scaled, not clipped, to 8 bits."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        array = np.asarray(image)
        if image.mode == "I":
            array = array.astype(np.int64)
            array = (array.clip(0, 65535)).astype(np.uint16)
        return array_to_rgb(array, f"PIL image (mode {image.mode})")
    return image.convert("RGB")


def to_rgb_images(target: object) -> list[Image.Image]:
    """One input or a list of them (paths, folders, PIL images, arrays) → RGB images."""
    if isinstance(target, (str, Path)):
        path = Path(target)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise DataError(f"{path}: no image files found")
            return [open_rgb(p) for p in files]
        return [open_rgb(path)]
    if isinstance(target, Image.Image):
        return [pil_to_rgb(target)]
    if isinstance(target, np.ndarray):
        return [array_to_rgb(target)]
    if isinstance(target, Sequence):
        return [image for item in target for image in to_rgb_images(item)]
    raise TypeError(f"cannot score a {type(target).__name__}: give a path, folder, PIL image, "
                    "numpy array, (B, 3, H, W) tensor in [0, 1] or a list of them")


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
    ) -> None:
        super().__init__()
        if loss_reduction not in ("mean", "sum", "none"):
            raise ValueError(f"loss_reduction: 'mean', 'sum' or 'none', got {loss_reduction!r}")
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
            raise ValueError(f"expected a (B, 3, H, W) or (B, 1, H, W) tensor, got shape "
                             f"{tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.to(self.device, torch.float32)
        if self.check_input_range and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
            raise ValueError(f"input must be in [0, 1], got {x.min().item():.4f} to "
                             f"{x.max().item():.4f}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        levels = []
        for size in self.input_sizes:
            resized = x if tuple(x.shape[-2:]) == (size, size) else F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            levels.append((resized - self.mean) / self.std)
        return levels

    def _score_images(self, images: list[Image.Image]) -> torch.Tensor:
        scores = []
        for start in range(0, len(images), self.batch_size):
            chunk = [to_model_inputs(image, self.input_sizes)
                     for image in images[start:start + self.batch_size]]
            levels = stack_levels(chunk, self.input_sizes)
            scores.append(self.net(*(torch.from_numpy(level).to(self.device)
                                     for level in levels)))
        return torch.cat(scores) if scores else torch.zeros(0, device=self.device)

    def forward(self, target: ImageInput | Sequence[ImageInput], ref: object = None,
                **kwargs: object) -> torch.Tensor:
        """Scores (B,) on the model's MOS scale; a tensor input keeps its gradient when
        ``as_loss``."""
        if ref is not None:
            raise ValueError(f"{self.metric_name} is a no-reference metric: no 'ref' image")
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
                scores = self._score_images(to_rgb_images(target))
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
