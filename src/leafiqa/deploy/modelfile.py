"""The file a user keeps: one safetensors file with the student's weights (backbone, head,
calibration) and its metadata — backbone name, input size, calibration, teacher id, training
manifest hash. No pickle: loading a model file never runs code from it."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.calibration.prior import PriorCalibration
from leafiqa.data.images import as_sizes
from leafiqa.errors import ModelFileError
from leafiqa.student.backbone import backbone_from_spec, backbone_id, backbone_spec_json
from leafiqa.student.head import QualityHead
from leafiqa.student.ridge import RidgeFit
from leafiqa.version import provenance

FORMAT = "leaf-model/1"

# What a model file may ask the loader for: metadata is read before any tensor, so a damaged or
# hostile file must not make it allocate gigabytes (a 20,000-px input is a 4.8 GB float tensor
# per image; a head of dim × components in the billions is many GB before any weight is read).
MAX_INPUT_SIZE = 2048
MAX_INPUT_LEVELS = 4
MAX_HEAD_WIDTH = 1 << 16
MAX_HEAD_PARAMETERS = 64 * 2**20
MAX_METADATA_CHARS = 64 * 2**20
# Content hashes of the images a model trained on, stored as this many leading bytes of each
# SHA-256 (8 bytes: a collision between two images is a one in 10^19 event per pair).
TRAINED_HASH_BYTES = 8


class TorchScoreMap(nn.Module):
    """``ScoreMap`` as tensor operations (so it is part of the exported ONNX graph)."""

    params: torch.Tensor  # buffers, typed for the checker

    def __init__(self, score_map: ScoreMap) -> None:
        super().__init__()
        self.kind = score_map.kind
        params = score_map.params or [0.0]
        self.register_buffer("params", torch.tensor(params, dtype=torch.float32))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return s
        if self.kind == "linear":
            return self.params[0] * s + self.params[1]
        b1, b2, b3, b4 = self.params[0], self.params[1], self.params[2], self.params[3]
        z = torch.clamp(-(s - b3) / b4.abs().clamp_min(1e-6), -60.0, 60.0)
        return (b1 - b2) / (1.0 + torch.exp(z)) + b2


class FeatureCorrection(nn.Module):
    """The calibration's linear correction on the features (``calibration.prior``); all zeros
    (no correction) unless the labels asked for one."""

    weight: torch.Tensor  # buffers, typed for the checker
    bias: torch.Tensor

    def __init__(self, dim: int, correction: RidgeFit | None = None) -> None:
        super().__init__()
        weight = torch.zeros(dim) if correction is None else torch.as_tensor(
            correction.coef, dtype=torch.float32)
        bias = 0.0 if correction is None else correction.intercept
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight + self.bias


class LeafNetwork(nn.Module):
    """One ImageNet-normalised (B, 3, S, S) tensor per input size → calibrated scores (B,):
    ``output_map(score_map(head(features)) + correction(features))`` (``calibration.prior``).

    With several sizes (an image pyramid) the same backbone reads each and the head sees their
    features side by side, in the order the sizes were given."""

    def __init__(self, backbone: nn.Module, head: QualityHead, score_map: ScoreMap,
                 correction: RidgeFit | None = None, output_map: ScoreMap | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.calibration = TorchScoreMap(score_map)
        self.correction = FeatureCorrection(head.dim, correction)
        self.output = TorchScoreMap(output_map or ScoreMap())

    @classmethod
    def calibrated(cls, backbone: nn.Module, head: QualityHead,
                   calibration: PriorCalibration | None = None) -> LeafNetwork:
        """The network of a distilled head and (when given) its calibration onto MOS."""
        if calibration is None:
            return cls(backbone, head, ScoreMap()).eval()
        return cls(backbone, head, calibration.line, calibration.correction,
                   calibration.output_map).eval()

    def forward(self, *levels: torch.Tensor) -> torch.Tensor:
        features = [self.backbone(images) for images in levels]
        joined = features[0] if len(features) == 1 else torch.cat(features, dim=1)
        return self.output(self.calibration(self.head(joined)) + self.correction(joined))


@dataclass
class ModelInfo:
    backbone: str
    input_sizes: tuple[int, ...]  # one size, or the levels of an image pyramid
    head: dict
    score_map: ScoreMap
    teacher_ids: list[str] = field(default_factory=list)
    manifest_hash: str = ""
    mos_range: tuple[float, float] | None = None
    created: str = ""
    notes: dict = field(default_factory=dict)
    # name, training data, teacher, labels, MOS scale, test metrics, licence (packaged models)
    card: dict = field(default_factory=dict)
    # tool version, git commit, labels file, seeds; version and commit filled in when saved
    provenance: dict = field(default_factory=dict)
    # the outer map of the calibration, after the feature correction (none in older files)
    output_map: ScoreMap = field(default_factory=ScoreMap)
    # the images that trained it (``training_record``); None: not recorded (older files)
    trained_on: dict | None = None
    # of those, the images whose MOS labels calibrated it (same form; an empty record for a
    # distilled model); None: not recorded (older files)
    labelled_on: dict | None = None
    # an HF backbone's id, revision, config and mean/std as JSON (``BackboneSpec``): rebuilds
    # it with no hub access; empty for EfficientNet-Lite (its name is enough)
    backbone_spec: str = ""

    def __post_init__(self) -> None:
        self.input_sizes = as_sizes(self.input_sizes)

    @property
    def score_range(self) -> tuple[float, float] | None:
        """The MOS scale the scores are on: the card's when it has one, else the range of the
        MOS labels the model was calibrated on; None for an uncalibrated model."""
        scale = self.card.get("mos_scale") or {}
        if scale.get("range"):
            low, high = scale["range"]
            return float(low), float(high)
        if self.score_map.kind == "none":
            return None
        return self.mos_range

    def to_metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "backbone": self.backbone,
            "input_size": str(max(self.input_sizes)),
            "input_sizes": json.dumps(list(self.input_sizes)),
            "head": json.dumps(self.head),
            "calibration": json.dumps(self.score_map.to_dict()),
            "output_calibration": json.dumps(self.output_map.to_dict()),
            "teacher_ids": json.dumps(self.teacher_ids),
            "manifest_hash": self.manifest_hash,
            "mos_range": json.dumps(self.mos_range),
            "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%S"),
            "notes": json.dumps(self.notes),
            "card": json.dumps(self.card),
            "provenance": json.dumps({**provenance(), **self.provenance}),
            **({"trained_on": json.dumps(self.trained_on)} if self.trained_on else {}),
            **({"labelled_on": json.dumps(self.labelled_on)} if self.labelled_on else {}),
            **({"backbone_spec": self.backbone_spec} if self.backbone_spec else {}),
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> ModelInfo:
        if metadata.get("format") != FORMAT:
            raise ModelFileError(
                f"{source}: not a LEAF model file (format {metadata.get('format')!r:.80})")
        if sum(len(value) for value in metadata.values()) > MAX_METADATA_CHARS:
            raise ModelFileError(f"{source}: damaged LEAF model metadata (more than "
                                 f"{MAX_METADATA_CHARS // 2**20} MB)")
        try:
            mos_range = json.loads(metadata.get("mos_range", "null"))
            return cls(
                backbone=metadata["backbone"],
                input_sizes=tuple(json.loads(metadata.get("input_sizes", "null"))
                                  or [int(metadata["input_size"])]),
                head=json.loads(metadata["head"]),
                score_map=ScoreMap.from_dict(json.loads(metadata["calibration"])),
                output_map=ScoreMap.from_dict(json.loads(
                    metadata.get("output_calibration", '{"kind": "none", "params": []}'))),
                teacher_ids=json.loads(metadata.get("teacher_ids", "[]")),
                manifest_hash=metadata.get("manifest_hash", ""),
                mos_range=tuple(mos_range) if mos_range else None,
                created=metadata.get("created", ""),
                notes=json.loads(metadata.get("notes", "{}")),
                card=json.loads(metadata.get("card", "{}")),
                provenance=json.loads(metadata.get("provenance", "{}")),
                trained_on=json.loads(metadata.get("trained_on", "null")),
                labelled_on=json.loads(metadata.get("labelled_on", "null")),
                backbone_spec=metadata.get("backbone_spec", ""),
            )
        except RecursionError:
            raise ModelFileError(f"{source}: damaged LEAF model metadata (JSON nested too "
                                 "deep)") from None
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            text = " ".join(str(error).split())[:200]
            raise ModelFileError(f"{source}: damaged LEAF model metadata ({text})") from None


def check_limits(info: ModelInfo, source: str) -> None:
    """Refuse metadata asking for more than any LEAF model needs, before anything is built."""
    sizes = info.input_sizes
    if len(sizes) > MAX_INPUT_LEVELS or max(sizes) > MAX_INPUT_SIZE:
        raise ModelFileError(f"{source}: input sizes {list(sizes)[:8]} are beyond what a LEAF "
                             f"model reads (at most {MAX_INPUT_LEVELS} sizes of at most "
                             f"{MAX_INPUT_SIZE} px)")
    head = info.head
    if not isinstance(head, dict):
        raise ModelFileError(f"{source}: damaged LEAF model metadata (head is not an object)")
    widths: dict[str, int] = {}
    for key in ("dim", "components", "hidden"):
        value = head.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not (
                (0 if key == "hidden" else 1) <= value <= MAX_HEAD_WIDTH):
            raise ModelFileError(f"{source}: head.{key} = {value!r:.40} is not a width a LEAF "
                                 f"head has (an integer up to {MAX_HEAD_WIDTH})")
        widths[key] = value
    dim, components, hidden = widths["dim"], widths["components"], widths["hidden"]
    parameters = dim * (components + 1) + components * max(hidden, 1) + 2 * hidden + 1
    if parameters > MAX_HEAD_PARAMETERS:
        raise ModelFileError(f"{source}: the head it describes has {parameters:,} parameters "
                             f"({parameters * 4 / 2**30:.1f} GB); a LEAF head has at most "
                             f"{MAX_HEAD_PARAMETERS:,}")


def training_record(keys: Iterable[str]) -> dict:
    """The images a model trained on, compactly: the leading bytes of each image's content
    hash (``data.images.content_hash``), sorted, as base64 (about 11 characters an image)."""
    digests = sorted({bytes.fromhex(key[:TRAINED_HASH_BYTES * 2]) for key in keys})
    return {"hash": f"sha256[:{TRAINED_HASH_BYTES}]", "count": len(digests),
            "images": base64.b64encode(b"".join(digests)).decode("ascii")}


def trained_digests(info: ModelInfo) -> set[bytes] | None:
    """The recorded training images' hash prefixes; None when the file has no record."""
    return record_digests(info.trained_on)


def record_digests(record: object) -> set[bytes] | None:
    """The hash prefixes of a ``training_record``; None when it is missing or damaged."""
    if not isinstance(record, dict) or record.get("hash") != f"sha256[:{TRAINED_HASH_BYTES}]":
        return None
    try:
        packed = base64.b64decode(str(record.get("images", "")), validate=True)
    except ValueError:
        return None
    size = TRAINED_HASH_BYTES
    return {packed[i:i + size] for i in range(0, len(packed) - size + 1, size)}


def seen_in_training(info: ModelInfo, keys: Iterable[str]) -> int | None:
    """How many of the images with these content hashes trained the model (None: unknown,
    a model file without the record)."""
    digests = trained_digests(info)
    if digests is None:
        return None
    return sum(bytes.fromhex(key[:TRAINED_HASH_BYTES * 2]) in digests for key in keys)


def labelled_in_training(info: ModelInfo, keys: Iterable[str]) -> int | None:
    """How many of the images with these content hashes calibrated the model with their MOS
    labels (None: unknown, a model file without that record). The rest of
    ``seen_in_training`` were distilled on (the teacher's judgments) and never labelled."""
    digests = record_digests(info.labelled_on)
    if digests is None:
        return None
    return sum(bytes.fromhex(key[:TRAINED_HASH_BYTES * 2]) in digests for key in keys)


def model_info(
    *,
    backbone: str,
    input_sizes: int | Sequence[int],
    head: QualityHead,
    calibration: PriorCalibration | None = None,
    labelled_mos: np.ndarray | None = None,
    teacher_ids: list[str] | None = None,
    manifest_hash: str = "",
    notes: dict | None = None,
    provenance: dict | None = None,
    trained_on: Iterable[str] | None = None,
    labelled_on: Iterable[str] | None = None,
) -> ModelInfo:
    """The metadata of a model file, built in one place for every writer (``leaf run``,
    ``leaf distill``, ``leaf calibrate``). ``calibration`` None: an uncalibrated (distilled)
    model; ``labelled_mos``: the MOS of the labels it was calibrated on (their range is the
    scale of its scores); ``trained_on``: the content hashes of the images that trained it
    (its record tells ``leaf evaluate`` which test images it has seen); ``labelled_on``: those
    of them whose MOS labels calibrated it (none for a distilled model)."""
    calibration = calibration or PriorCalibration(ScoreMap())
    mos = np.zeros(0) if labelled_mos is None else np.asarray(labelled_mos, dtype=np.float64)
    return ModelInfo(
        backbone=backbone,
        input_sizes=as_sizes(input_sizes),
        head=head.config(),
        score_map=calibration.line,
        output_map=calibration.output_map,
        teacher_ids=list(teacher_ids or []),
        manifest_hash=manifest_hash,
        mos_range=(float(mos.min()), float(mos.max())) if mos.size else None,
        notes=dict(notes or {}),
        provenance=dict(provenance or {}),
        trained_on=None if trained_on is None else training_record(trained_on),
        labelled_on=None if labelled_on is None else training_record(labelled_on),
    )


def save_model(path: str | Path, network: LeafNetwork, info: ModelInfo,
               half_backbone: bool = False) -> Path:
    """``half_backbone``: store the backbone's weights as float16 (half the file; loading
    turns them back into float32). The head and the calibration always stay float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the backbone describes itself: an HF one by id and spec, never by a local path
    info = dataclasses.replace(info, backbone=backbone_id(network.backbone),
                               backbone_spec=backbone_spec_json(network.backbone) or "")
    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    if half_backbone:
        tensors = {k: v.half() if k.startswith("backbone.") and v.is_floating_point() else v
                   for k, v in tensors.items()}
    save_file(tensors, str(path), metadata=info.to_metadata())
    return path


def read_info(path: str | Path) -> ModelInfo:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise ModelFileError(f"{path}: not a safetensors model file ({error})") from None
    info = ModelInfo.from_metadata(metadata, str(path))
    check_limits(info, str(path))
    return info


def load_network(path: str | Path) -> tuple[LeafNetwork, ModelInfo]:
    info = read_info(path)
    try:
        backbone = backbone_from_spec(info.backbone, info.backbone_spec)
    except (KeyError, ValueError, TypeError) as error:  # a damaged spec
        raise ModelFileError(f"{path}: damaged backbone spec ({error})") from None
    try:
        head = QualityHead(**info.head)
        network = LeafNetwork(backbone, head, info.score_map, output_map=info.output_map)
        # files written before the feature correction and the outer map existed have neither:
        # the correction stays zero, the outer map the identity
        missing, unexpected = network.load_state_dict(load_file(str(path)), strict=False)
    except (RuntimeError, TypeError, ValueError) as error:  # wrong shapes, keys or head config
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path}: tensors do not match the network it describes "
                             f"({first})") from None
    if unexpected or any(not key.startswith(("correction.", "output.")) for key in missing):
        raise ModelFileError(f"{path}: tensors do not match the network it describes "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return network.eval(), info
