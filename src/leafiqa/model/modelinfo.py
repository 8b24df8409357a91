"""What a model file says about itself, read without PyTorch: its metadata (backbone, input
sizes, head widths, calibration, card, provenance, the images it trained on) and the limits a
file must keep before anything is built from it. ``model.file`` builds the network; this is
all ``leaf score`` needs with ONNX Runtime (and ``leaf info``, ``leaf models``)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from leafiqa.calibration.mapping import ScoreMap
from leafiqa.data.images import as_sizes
from leafiqa.errors import ModelFileError
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


def read_info(path: str | Path) -> ModelInfo:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise ModelFileError(f"{path}: not a safetensors model file ({error})") from None
    info = ModelInfo.from_metadata(metadata, str(path))
    check_limits(info, str(path))
    return info
