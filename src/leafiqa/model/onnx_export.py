"""The calibrated student as one ONNX graph (calibration included, dynamic batch axis).

Two input conventions: ``export_model_onnx`` reads normalised float (B, 3, S, S) arrays (what
``Scorer.score_array`` takes); ``export_pixel_onnx`` reads the decoded uint8 (B, S, S, 3) pixels
and normalises inside the graph, which is what ``leaf score`` runs (normalising in NumPy cost
more than the network at 512 px) and what INT8 quantization starts from.

Every graph derived from a model file records that file's SHA-256 (``stamp_graph``) and is used
only for that file; finding and checking graphs needs no PyTorch (``model.graphs``). Graphs are
written to a temporary file and renamed into place, so an interrupted export never leaves a
truncated graph behind."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from leafiqa.data.images import IMAGENET_MEAN, IMAGENET_STD
from leafiqa.model.file import load_network
from leafiqa.model.graphs import (  # noqa: F401 - kept importable from here
    MODEL_SHA_KEY,
    atomic_output,
    cached_graph,
    graph_matches,
    graph_metadata,
    model_sha256,
)
from leafiqa.student.onnx_runtime import export_onnx

log = logging.getLogger(__name__)


def stamp_graph(path: Path, model_sha: str, extra: dict[str, str] | None = None) -> None:
    """Record the model file's hash (and ``extra`` metadata) in the graph at ``path``."""
    import onnx

    model = onnx.load(str(path))
    values = {MODEL_SHA_KEY: model_sha, **(extra or {})}
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _export_stamped(model_path: str | Path, output: Path,
                    write: Callable[[Path], None]) -> Path:
    sha = model_sha256(model_path)
    with atomic_output(output) as temporary:
        write(temporary)
        stamp_graph(temporary, sha)
    return output


def export_model_onnx(model_path: str | Path, output: str | Path | None = None) -> Path:
    network, info = load_network(model_path)
    output = Path(output) if output else Path(model_path).with_suffix(".onnx")
    return _export_stamped(model_path, output,
                           lambda path: export_onnx(network, info.input_sizes, path))


def pixel_input_names(sizes: Sequence[int]) -> list[str]:
    return ["pixels"] if len(sizes) == 1 else [f"pixels_{size}" for size in sizes]


class PixelInputs(torch.nn.Module):
    """uint8 (B, S, S, 3) pixels per level → the normalised float input the network reads."""

    scale: torch.Tensor  # buffers, typed for the checker
    shift: torch.Tensor

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        scale = 1.0 / (255.0 * IMAGENET_STD)
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.from_numpy(
            (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)).view(1, 3, 1, 1))

    def forward(self, *pixels: torch.Tensor) -> torch.Tensor:
        return self.network(*(p.permute(0, 3, 1, 2).float() * self.scale + self.shift
                              for p in pixels))


def export_pixel_onnx(model_path: str | Path, output: str | Path) -> Path:
    import warnings

    network, info = load_network(model_path)
    names = pixel_input_names(info.input_sizes)
    examples = tuple(torch.zeros(2, s, s, 3, dtype=torch.uint8) for s in info.input_sizes)

    def write(path: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(PixelInputs(network).eval(), examples, str(path),
                              input_names=names, output_names=["output"],
                              dynamic_axes={**{n: {0: "batch"} for n in names},
                                            "output": {0: "batch"}},
                              opset_version=17, dynamo=False)

    return _export_stamped(model_path, Path(output), write)
