"""The file a user keeps: one safetensors file with the student's weights (backbone, head,
calibration) and its metadata — backbone name, input size, calibration, teacher id, training
manifest hash. No pickle: loading a model file never runs code from it. The metadata is read
without PyTorch by ``model.modelinfo`` (re-exported here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.calibration.prior import PriorCalibration
from leafiqa.data.images import as_sizes
from leafiqa.errors import ModelFileError
from leafiqa.model.modelinfo import (  # noqa: F401 - kept importable from here
    FORMAT,
    MAX_HEAD_PARAMETERS,
    MAX_HEAD_WIDTH,
    MAX_INPUT_LEVELS,
    MAX_INPUT_SIZE,
    MAX_METADATA_CHARS,
    TRAINED_HASH_BYTES,
    ModelInfo,
    check_limits,
    labelled_in_training,
    read_info,
    record_digests,
    seen_in_training,
    trained_digests,
    training_record,
)
from leafiqa.student.backbone import backbone_from_spec, backbone_id, backbone_spec_json
from leafiqa.student.head import QualityHead
from leafiqa.student.ridge import RidgeFit


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
