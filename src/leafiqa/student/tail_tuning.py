"""Fine-tuning the backbone on the teacher's judgments: the last N blocks (plus the head
convolution; ``student.finetune: tail``) or every layer (``full``: N = blocks + 1 takes in the
stem), trained with the head (AdamW, cosine learning-rate decay), on CUDA when there is a GPU.

The frozen front is run once: each image's activation at the cut and the pooled features of the
levels before it are cached in memory, so an epoch costs only the tail. BatchNorm statistics stay
frozen (small batches on a CPU would corrupt them). The pair-wise term uses the teacher's pairs
with at least one image in the batch, the other image's score taken from the previous epoch
(detached). A validation slice of the training images (never the test split) stops training
early and keeps the best state. Slow on 2 CPU cores (minutes per epoch): an option
(``student.finetune``), off by default."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from leafiqa.data.images import as_sizes
from leafiqa.data.loader import iter_batches
from leafiqa.data.manifest import DataError
from leafiqa.student.backbone import MultiLevelBackbone
from leafiqa.student.distill import (
    DistillConfig,
    TeacherTargets,
    judgment_weights,
    split_validation,
    train_loop,
)
from leafiqa.student.head import QualityHead
from leafiqa.student.losses import pair_loss, point_loss


@dataclass
class TailConfig:
    blocks: int = 1
    epochs: int = 4
    lr: float = 1e-4
    batch_size: int = 32
    patience: int = 2
    seed: int = 0


@dataclass
class FrozenFront:
    """What the frozen front computed, per pyramid level: pooled features of the taps before
    the cut and the activation entering it (rows = images)."""

    before: list[torch.Tensor]
    activation: list[torch.Tensor]

    def __len__(self) -> int:
        return self.before[0].shape[0]

    def rows(self, index: torch.Tensor | slice) -> FrozenFront:
        return FrozenFront([b[index] for b in self.before], [a[index] for a in self.activation])

    def to(self, device: torch.device) -> FrozenFront:
        return FrozenFront([b.to(device) for b in self.before],
                           [a.to(device) for a in self.activation])


def training_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pyramid_tail_features(backbone: MultiLevelBackbone, front: FrozenFront, cut: int
                          ) -> torch.Tensor:
    """Features of every level (as ``MultiLevelBackbone`` gives them), side by side."""
    return torch.cat([backbone.tail(before, activation, cut)
                      for before, activation in zip(front.before, front.activation,
                                                    strict=True)], dim=1)


def tail_features_batched(backbone: MultiLevelBackbone, front: FrozenFront, cut: int,
                          batch: int = 64) -> torch.Tensor:
    """``pyramid_tail_features`` over cached fronts, ``batch`` images at a time, without
    gradients, on the backbone's device; returned on the CPU."""
    device = next(backbone.parameters()).device
    with torch.no_grad():
        return torch.cat([pyramid_tail_features(backbone, front.rows(slice(i, i + batch))
                                                .to(device), cut).cpu()
                          for i in range(0, len(front), batch)])


def cache_front(backbone: MultiLevelBackbone, paths: Sequence[Path], sizes: int | Sequence[int],
                cut: int, progress: bool = True) -> FrozenFront:
    levels = len(as_sizes(sizes))
    befores: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    activations: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    backbone.eval()
    with torch.inference_mode(), tqdm(total=len(paths), desc="caching frozen front",
                                      unit="img", disable=not progress) as bar:
        for batch in iter_batches(paths, sizes, batch_size=16):
            if batch.failures:
                raise DataError("; ".join(reason for _, reason in batch.failures))
            for level, pixels in enumerate(batch.levels):
                before, x = backbone.front(torch.from_numpy(pixels), cut)
                befores[level].append(before)
                activations[level].append(x)
            bar.update(len(batch.indices))
    return FrozenFront([torch.cat(b) for b in befores], [torch.cat(a) for a in activations])


@dataclass
class JointObjective:
    """The teacher's judgments of ``n`` images as tensors on the training device: point targets
    and weights of every image, the pairs among the training rows; the loss of a batch of rows
    (point-wise, plus the pairs that touch the batch against every image's last scores)."""

    point_target: torch.Tensor
    point_weight: torch.Tensor
    pair_a: torch.Tensor
    pair_b: torch.Tensor
    pair_p: torch.Tensor
    pair_w: torch.Tensor
    distill: DistillConfig

    @classmethod
    def of(cls, targets: TeacherTargets, n: int, train_rows: np.ndarray,
           distill: DistillConfig, device: torch.device) -> JointObjective:
        train_targets = targets.restricted(train_rows)
        point_target, point_weight = torch.zeros(n), torch.zeros(n)
        index = torch.as_tensor(targets.point_index)
        point_target[index] = torch.as_tensor(targets.point_target)
        point_weight[index] = judgment_weights(targets.point_reliability, distill)
        return cls(point_target.to(device), point_weight.to(device),
                   torch.as_tensor(train_targets.pair_a).to(device),
                   torch.as_tensor(train_targets.pair_b).to(device),
                   torch.as_tensor(train_targets.pair_prob).to(device),
                   judgment_weights(train_targets.pair_reliability, distill).to(device),
                   distill)

    def batch_loss(self, batch_scores: torch.Tensor, rows: torch.Tensor,
                   scores: torch.Tensor) -> torch.Tensor:
        table = scores.clone()
        table[rows] = batch_scores
        loss = self.distill.point_weight * point_loss(batch_scores, self.point_target[rows],
                                                      self.point_weight[rows])
        in_batch = torch.isin(self.pair_a, rows) | torch.isin(self.pair_b, rows)
        if self.distill.pair_weight > 0 and bool(in_batch.any()):
            loss = loss + self.distill.pair_weight * pair_loss(
                table[self.pair_a[in_batch]], table[self.pair_b[in_batch]],
                self.pair_p[in_batch], self.pair_w[in_batch], self.distill.temperature,
                self.distill.pair_loss)
        return loss

    def validation_loss(self, scores: torch.Tensor, val_rows: np.ndarray) -> float:
        rows = torch.as_tensor(val_rows, device=scores.device)
        return float(point_loss(scores[rows], self.point_target[rows], self.point_weight[rows]))


def fit_backbone_and_head(backbone: Any, head: QualityHead, parameters: list,
                          step_loss: Any, all_scores: Any, objective: JointObjective,
                          val_rows: np.ndarray, steps_per_epoch: int, config: TailConfig,
                          bar: Any) -> None:
    """``train_loop`` over ``parameters`` of both networks, scoring every image after each
    epoch (``all_scores``, which ``step_loss`` reads from ``state["scores"]``); with a
    validation slice the best state is kept (it may be the state before tuning), without one
    the last. Every parameter is trainable again afterwards."""
    state = {"scores": all_scores()}

    def end_of_epoch() -> float | None:
        bar.update()
        state["scores"] = all_scores()
        return objective.validation_loss(state["scores"], val_rows) if val_rows.size else None

    def snapshot() -> tuple[dict, dict]:
        return copy.deepcopy((backbone.state_dict(), head.state_dict()))

    def restore(saved: tuple[dict, dict]) -> None:
        backbone.load_state_dict(saved[0])
        head.load_state_dict(saved[1])

    best = ((objective.validation_loss(state["scores"], val_rows), snapshot())
            if val_rows.size else None)
    with bar:
        train_loop(parameters, lambda step: step_loss(step, state["scores"]),
                   steps=config.epochs * steps_per_epoch, lr=config.lr,
                   weight_decay=objective.distill.weight_decay, snapshot=snapshot,
                   restore=restore, validation=end_of_epoch, eval_every=steps_per_epoch,
                   patience=config.patience, min_lr=config.lr * 0.05, best=best)
    for parameter in [*backbone.parameters(), *head.parameters()]:
        parameter.requires_grad_(True)


def tune_tail(
    backbone: MultiLevelBackbone,
    head: QualityHead,
    front: FrozenFront,
    targets: TeacherTargets,
    config: TailConfig | None = None,
    distill: DistillConfig | None = None,
    progress: bool = True,
) -> tuple[MultiLevelBackbone, QualityHead]:
    """Copies of ``backbone`` and ``head`` with the last ``config.blocks`` blocks, the head
    convolution and the head's MLP trained on ``targets`` (rows = the images of ``front``,
    from ``cache_front`` with the cut ``backbone.block_count - config.blocks``)."""
    config = config or TailConfig()
    distill = distill or DistillConfig()
    device = training_device()
    backbone, head = copy.deepcopy(backbone).to(device), copy.deepcopy(head).to(device)
    cut = backbone.block_count - config.blocks
    parameters = backbone.trainable_tail(config.blocks) + list(head.net.parameters())
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    train_rows, val_rows = split_validation(len(front), distill.val_fraction, distill.seed)
    steps_per_epoch = -(-train_rows.size // config.batch_size)
    objective = JointObjective.of(targets, len(front), train_rows, distill, device)

    def all_scores() -> torch.Tensor:
        backbone.eval()
        head.eval()
        with torch.no_grad():
            return head(tail_features_batched(backbone, front, cut).to(device))

    generator = np.random.default_rng(config.seed)
    order = np.zeros(0, dtype=np.int64)
    bar = tqdm(total=config.epochs, desc=f"tuning last {config.blocks} block(s)",
               disable=not progress)

    def step_loss(step: int, scores: torch.Tensor) -> torch.Tensor:
        nonlocal order
        if step % steps_per_epoch == 0:
            order = generator.permutation(train_rows)
        head.train()  # dropout on; BatchNorm stays in eval mode below
        backbone.eval()
        start = (step % steps_per_epoch) * config.batch_size
        rows = torch.as_tensor(order[start:start + config.batch_size])
        batch_scores = head(pyramid_tail_features(backbone, front.rows(rows).to(device), cut))
        return objective.batch_loss(batch_scores, rows.to(device), scores)

    fit_backbone_and_head(backbone, head, parameters, step_loss, all_scores, objective,
                          val_rows, steps_per_epoch, config, bar)
    return backbone.cpu().eval(), head.cpu().eval()


# ---- fine-tuning on decoded images (``full``, and any HF backbone): no cached front --------

class _PixelRows(torch.utils.data.Dataset):
    """Row i → (i, one uint8 (S, S, 3) array per size): decoded in DataLoader workers,
    normalised on the training device (a quarter of the bytes to move)."""

    def __init__(self, paths: Sequence[Path], sizes: tuple[int, ...]) -> None:
        self.paths = list(paths)
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, tuple[np.ndarray, ...]]:
        from leafiqa.data.images import load_pixels

        # a writable copy: PIL's array view is read-only, which torch's collate warns about
        return index, tuple(np.array(p) for p in load_pixels(self.paths[index], self.sizes))


def loader_workers(device: torch.device) -> int:
    """Decoding workers: enough to keep a GPU fed; none on a CPU (the network is the
    bottleneck there, and each epoch's fork of a large process costs seconds)."""
    import os

    return max(0, min(8, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0


def image_loader(paths: Sequence[Path], sizes: tuple[int, ...], batch_size: int,
                 shuffle: bool, seed: int, device: torch.device,
                 workers: int | None = None) -> torch.utils.data.DataLoader:
    """Decoding workers run ahead of the device (pinned memory on CUDA); ``shuffle``: a new
    seeded order each epoch."""
    workers = loader_workers(device) if workers is None else workers
    return torch.utils.data.DataLoader(
        _PixelRows(paths, sizes), batch_size=batch_size, shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        multiprocessing_context="fork" if workers > 0 else None)


def _normalised(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    from leafiqa.data.images import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    x = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 mixed precision on a GPU that has it (no loss scaling needed), else none."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _pyramid_features(backbone: torch.nn.Module, levels: Sequence[torch.Tensor],
                      device: torch.device) -> torch.Tensor:
    dtype = autocast_dtype(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        features = torch.cat([backbone(_normalised(level, device)) for level in levels], dim=1)
    return features.float()


def image_features(backbone: torch.nn.Module, paths: Sequence[Path],
                   sizes: int | Sequence[int], batch_size: int = 32,
                   progress: bool = False, workers: int | None = None) -> torch.Tensor:
    """Features of every image (pyramid levels side by side) on the backbone's device, without
    gradients; returned on the CPU in ``paths`` order."""
    device = next(backbone.parameters()).device
    backbone.eval()
    loader = image_loader(paths, as_sizes(sizes), batch_size, False, 0, device, workers)
    rows = []
    with torch.no_grad():
        for _, levels in tqdm(loader, desc="features of the tuned backbone", disable=not progress):
            rows.append(_pyramid_features(backbone, levels, device).cpu())
    return torch.cat(rows)


def tune_on_images(
    backbone: Any,
    head: QualityHead,
    paths: Sequence[Path],
    sizes: int | Sequence[int],
    targets: TeacherTargets,
    config: TailConfig | None = None,
    distill: DistillConfig | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[torch.nn.Module, QualityHead]:
    """``tune_tail`` reading images instead of a cached front: every epoch decodes ``paths``
    (rows of ``targets``) in DataLoader workers and runs the whole backbone, in bfloat16 mixed
    precision on CUDA; the last ``config.blocks`` blocks (all of them when it exceeds
    ``block_count``) and the head's MLP train. What ``student.finetune: full`` runs, and any
    fine-tuning of an HF backbone."""
    config = config or TailConfig()
    distill = distill or DistillConfig()
    device = training_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    sizes = as_sizes(sizes)
    backbone, head = copy.deepcopy(backbone).to(device), copy.deepcopy(head).to(device)
    parameters = backbone.trainable_tail(config.blocks) + list(head.net.parameters())
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    n = len(paths)
    train_rows, val_rows = split_validation(n, distill.val_fraction, distill.seed)
    steps_per_epoch = -(-train_rows.size // config.batch_size)
    objective = JointObjective.of(targets, n, train_rows, distill, device)
    train_paths = [paths[i] for i in train_rows]
    loader = image_loader(train_paths, sizes, config.batch_size, True, config.seed, device,
                          workers)
    train_index = torch.as_tensor(train_rows)
    batches: Any = iter(())  # the loader's (positions, levels) batches

    def all_scores() -> torch.Tensor:
        head.eval()
        features = image_features(backbone, paths, sizes, config.batch_size, workers=workers)
        with torch.no_grad():
            return head(features.to(device))

    bar = tqdm(total=config.epochs, desc=f"fine-tuning {min(config.blocks, backbone.block_count)}"
               f" of {backbone.block_count} blocks on {device.type}", disable=not progress)

    def step_loss(step: int, scores: torch.Tensor) -> torch.Tensor:
        nonlocal batches
        if step % steps_per_epoch == 0:
            batches = iter(loader)
        positions, levels = next(batches)
        head.train()  # dropout on; BatchNorm statistics stay frozen
        backbone.eval()
        rows = train_index[positions].to(device)
        batch_scores = head(_pyramid_features(backbone, levels, device))
        return objective.batch_loss(batch_scores, rows, scores)

    fit_backbone_and_head(backbone, head, parameters, step_loss, all_scores, objective,
                          val_rows, steps_per_epoch, config, bar)
    return backbone.eval(), head.eval()
