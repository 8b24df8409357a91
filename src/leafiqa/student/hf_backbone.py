"""Hugging Face ``transformers`` vision models as LEAF backbones (``student.backbone: hf:ID``):
ConvNeXt and other ConvNets, and the vision towers of CLIP, SigLIP, DINOv2 and ViT.

``hf:facebook/dinov2-small`` (optionally ``@REVISION``) takes the weights from the hub cache,
downloading them once when the hub can be reached; ``hf:/models/convnext-base`` reads a local
folder written by ``save_pretrained``. Multi-level features, like the EfficientNet student's:
mean and standard deviation of every stage end for a ConvNet; for a ViT, the token mean and
standard deviation (patch tokens only) of up to four evenly spaced layers plus the class token
(the model's pooled output where it has one). The network reads ImageNet-normalised input like
every LEAF backbone and re-normalises to the model's own mean/std inside itself, so data
loading, the pixel graphs and ``create_metric`` stay as they are.

A model file records a ``BackboneSpec``: the id, the revision (hub commit, or a hash of a local
folder's weights), the model's config and its mean/std — enough to rebuild the network with no
hub access. Never a path of this machine."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leafiqa.errors import BackboneError

PREFIX = "hf:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# when a folder has no preprocessor_config.json
DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "clip_vision_model": ((0.48145466, 0.4578275, 0.40821073),
                          (0.26862954, 0.26130258, 0.27577711)),
    "siglip_vision_model": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
MAX_VIT_LAYERS = 4
_PROBE_SIZE = 64  # a forward at this size tells a ConvNet from a ViT and gives the widths


@dataclass(frozen=True)
class BackboneSpec:
    """What a model file records about an HF backbone (rebuilds it without the hub)."""

    id: str  # hf:org/name for the hub, hf:local/<folder name> for a local folder
    revision: str  # hub commit, or sha256:… of a local folder's weight files
    model_type: str  # the vision model's config model_type
    config: dict = field(default_factory=dict)  # the vision model's config, as to_dict gives
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def to_json(self) -> str:
        return json.dumps({"kind": "hf", **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> BackboneSpec:
        data = json.loads(text)
        data.pop("kind", None)
        return cls(id=data["id"], revision=data["revision"], model_type=data["model_type"],
                   config=data["config"], mean=tuple(data["mean"]), std=tuple(data["std"]))

    @property
    def cache_id(self) -> str:
        """Id and revision, safe in a file name: the feature cache's key."""
        name = self.id.removeprefix(PREFIX).replace("/", "_").replace(":", "_")
        return f"hf-{name}-{self.revision.removeprefix('sha256:')[:12]}"


def is_hf(name: str) -> bool:
    return name.startswith(PREFIX)


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise BackboneError("hf: backbones need the transformers package "
                            "(`pip install 'leaf-iqa[transformers]'`)") from None
    return transformers


@dataclass(frozen=True)
class Source:
    id: str
    revision: str
    folder: Path


def _folder_revision(folder: Path) -> str:
    """A local folder's revision: the hash of its config and weight files (so two folders with
    the same name never share cached features)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json") and path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for chunk in iter(functools.partial(handle.read, 1 << 22), b""):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def _looks_local(reference: str) -> bool:
    return reference.startswith(("/", "./", "../", "~")) or Path(reference).expanduser().is_dir()


@functools.cache
def resolve(name: str) -> Source:
    """``hf:ID[@REVISION]`` or ``hf:FOLDER`` → the folder holding its files, id and revision.
    A hub id with neither a cached copy nor the hub: one ``BackboneError`` saying what to do."""
    reference = name.removeprefix(PREFIX).strip()
    if not reference:
        raise BackboneError(f"backbone '{name}': give a hub id or a folder after 'hf:' "
                            "(hf:facebook/dinov2-small, hf:/models/convnext-base)")
    if _looks_local(reference):
        folder = Path(reference).expanduser()
        if not (folder / "config.json").is_file():
            raise BackboneError(f"backbone '{name}': {folder} has no config.json (a folder "
                                "written by save_pretrained or downloaded from the hub)")
        return Source(f"{PREFIX}local/{folder.resolve().name}", _folder_revision(folder), folder)
    repo_id, _, revision = reference.partition("@")
    _require_transformers()
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(
            repo_id, revision=revision or None,
            allow_patterns=["*.json", "*.safetensors", "pytorch_model*.bin"]))
    except Exception as error:  # offline, unknown id, no network: hub errors vary
        raise BackboneError(
            f"backbone '{name}': no copy of {repo_id} in the Hugging Face cache and the hub "
            f"could not be reached ({type(error).__name__}); on a machine with the internet run "
            f"`huggingface-cli download {repo_id}` (or unset HF_HUB_OFFLINE), or point "
            "student.backbone at a local folder: hf:/path/to/folder") from None
    return Source(f"{PREFIX}{repo_id}", folder.name, folder)


def _vision_config(config: Any) -> Any:
    """The vision tower's config of a two-tower model (CLIP, SigLIP), else the config."""
    return getattr(config, "vision_config", None) or config


def _normalisation(folder: Path, model_type: str
                   ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    processor = folder / "preprocessor_config.json"
    if processor.is_file():
        data = json.loads(processor.read_text())
        if data.get("image_mean") and data.get("image_std"):
            return tuple(map(float, data["image_mean"])), tuple(map(float, data["image_std"]))
    return DEFAULT_NORMALISATION.get(model_type, (IMAGENET_MEAN, IMAGENET_STD))


def _portable_config(config: Any) -> dict:
    data = config.to_dict()
    data.pop("_name_or_path", None)  # a path of this machine
    return data


def load_pretrained(name: str) -> tuple[nn.Module, BackboneSpec]:
    transformers = _require_transformers()
    source = resolve(name)
    try:
        config = _vision_config(transformers.AutoConfig.from_pretrained(source.folder))
        model_class = transformers.AutoModel._model_mapping[type(config)]
        model = model_class.from_pretrained(source.folder, config=config, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as error:
        raise BackboneError(f"backbone '{name}': cannot load it with transformers "
                            f"({str(error).splitlines()[0] if str(error) else error!r})") from None
    mean, std = _normalisation(source.folder, config.model_type)
    spec = BackboneSpec(source.id, source.revision, config.model_type, _portable_config(config),
                        mean, std)
    return model, spec


def model_from_spec(spec: BackboneSpec) -> nn.Module:
    """The architecture a spec describes, randomly initialised (a model file's weights follow)."""
    transformers = _require_transformers()
    try:
        config_class = transformers.CONFIG_MAPPING[spec.model_type]
    except KeyError:
        raise BackboneError(f"backbone '{spec.id}': this transformers "
                            f"({transformers.__version__}) does not know the model type "
                            f"'{spec.model_type}'; upgrade transformers") from None
    config = config_class.from_dict(spec.config)
    return transformers.AutoModel.from_config(config, dtype=torch.float32)


def _chosen_layers(n_layers: int) -> tuple[int, ...]:
    """Up to ``MAX_VIT_LAYERS`` evenly spaced layers, always the last (1-based: hidden_states
    index; 0 is the embedding)."""
    return tuple(sorted({max(1, math.ceil(n_layers * k / MAX_VIT_LAYERS))
                         for k in range(1, MAX_VIT_LAYERS + 1)}))


def _token_mean_std(tokens: torch.Tensor) -> torch.Tensor:
    mean = tokens.mean(dim=1)
    std = (tokens.var(dim=1, unbiased=False) + 1e-6).sqrt()
    return torch.cat([mean, std], dim=1)


def _map_mean_std(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(2, 3))
    std = (x.var(dim=(2, 3), unbiased=False) + 1e-6).sqrt()
    return torch.cat([mean, std], dim=1)


class HFBackbone(nn.Module):
    """images (B, 3, H, W), ImageNet-normalised → features (B, D), the ``Backbone`` interface
    of ``student.backbone`` (front/tail: the front is the images themselves — fine-tuning an
    HF backbone runs the whole network, the last ``n`` stages or layers trainable)."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, model: nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.name = spec.id
        imagenet_mean, imagenet_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean, std = torch.tensor(spec.mean), torch.tensor(spec.std)
        # ImageNet-normalised → the model's normalisation: x·a + b per channel
        self.renormalise = not (torch.allclose(mean, imagenet_mean)
                                and torch.allclose(std, imagenet_std))
        self.register_buffer("scale", (imagenet_std / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((imagenet_mean - mean) / std).view(1, 3, 1, 1),
                             persistent=False)
        self._interpolate = "interpolate_pos_encoding" in inspect.signature(
            model.forward).parameters
        with torch.no_grad():
            probe = self._run(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE))
        states = probe.hidden_states
        self.kind = "conv" if states[-1].dim() == 4 else "vit"
        if self.kind == "conv":
            self.layers = tuple(range(1, len(states)))  # every stage end
            widths = [states[i].shape[1] for i in self.layers]
            self.blocks_per_size: tuple[int, ...] = tuple(w for w in widths for _ in range(2))
            self.prefix_tokens = 0
            self.class_token = False
        else:
            self.layers = _chosen_layers(len(states) - 1)
            patch = _vision_config(model.config).patch_size
            patch = patch[0] if isinstance(patch, (list, tuple)) else patch
            self.prefix_tokens = states[-1].shape[1] - (_PROBE_SIZE // patch) ** 2
            self.class_token = probe.pooler_output is not None or self.prefix_tokens > 0
            width = states[-1].shape[2]
            self.blocks_per_size = (width,) * (2 * len(self.layers) + int(self.class_token))
        self.feature_dim = sum(self.blocks_per_size)
        self._stack = self._block_list(len(states) - 1)

    def _run(self, images: torch.Tensor) -> Any:
        if self.renormalise:
            images = images * self.scale + self.shift
        extra = {"interpolate_pos_encoding": True} if self._interpolate else {}
        return self.model(pixel_values=images, output_hidden_states=True, return_dict=True,
                          **extra)

    def _block_list(self, count: int) -> tuple[str, nn.ModuleList | None]:
        """The ModuleList of the stages (ConvNet) or layers (ViT): the first one, outermost,
        with as many entries as the hidden states have after the embedding."""
        for module_name, module in self.model.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) == count:
                return module_name, module
        return "", None

    @property
    def block_count(self) -> int:
        return len(self._stack[1]) if self._stack[1] is not None else 1

    def features(self, images: torch.Tensor) -> torch.Tensor:
        output = self._run(images)
        states = output.hidden_states
        if self.kind == "conv":
            return torch.cat([_map_mean_std(states[i]) for i in self.layers], dim=1)
        pooled = [_token_mean_std(states[i][:, self.prefix_tokens:]) for i in self.layers]
        if self.class_token:
            pooled.append(output.pooler_output if output.pooler_output is not None
                          else states[-1][:, 0])
        return torch.cat(pooled, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def front(self, images: torch.Tensor, cut: int) -> tuple[torch.Tensor, torch.Tensor]:
        return images.new_zeros((images.shape[0], 0)), images

    def tail(self, before: torch.Tensor, x: torch.Tensor, cut: int) -> torch.Tensor:
        return self.features(x)

    def trainable_tail(self, n_blocks: int) -> list[nn.Parameter]:
        """The last ``n_blocks`` stages/layers and what follows them (final norm, pooler);
        ``n_blocks > block_count``: every parameter."""
        if n_blocks <= 0:
            return []
        prefix, stack = self._stack
        if n_blocks > self.block_count or stack is None:
            return list(self.model.parameters())
        chosen = {id(p) for m in list(stack)[-n_blocks:] for p in m.parameters()}
        after = {id(p) for name, p in self.model.named_parameters()
                 if not name.startswith(prefix + ".") and "embed" not in name
                 and "pre_layrnorm" not in name}
        return [p for p in self.model.parameters() if id(p) in chosen | after]


def build_hf_backbone(name: str, pretrained: bool = True) -> HFBackbone:
    """``pretrained=False`` still reads the folder's config (and needs the hub cache or the
    folder) but not its weights."""
    if pretrained:
        model, spec = load_pretrained(name)
        return HFBackbone(model, spec)
    transformers = _require_transformers()
    source = resolve(name)
    config = _vision_config(transformers.AutoConfig.from_pretrained(source.folder))
    mean, std = _normalisation(source.folder, config.model_type)
    spec = BackboneSpec(source.id, source.revision, config.model_type,
                        _portable_config(config), mean, std)
    return HFBackbone(model_from_spec(spec), spec)
