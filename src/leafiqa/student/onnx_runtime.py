"""ONNX Runtime helpers: export a PyTorch module to ONNX, and open an inference session.

Shared by the student's feature extractor (``student.features`` runs the frozen backbone
through ONNX Runtime when it is installed) and by ``model/`` (the scorer, int8 quantisation,
``leaf export``). They live here, with the student, rather than in ``model/`` because the
student needs them too and ``model/`` sits above it: imports go one way, from the model down to
the student, never back (docs: Architecture)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from leafiqa.data.images import as_sizes


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_input_names(sizes: Sequence[int]) -> list[str]:
    """``images`` for a single-size graph, ``images_<size>`` for each level of a pyramid."""
    return ["images"] if len(sizes) == 1 else [f"images_{size}" for size in sizes]


def export_onnx(module: torch.nn.Module, size: int | Sequence[int], path: Path) -> None:
    """Export a module taking one (B, 3, S, S) tensor per size → (B, …), dynamic batch axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = as_sizes(size)
    examples = tuple(torch.zeros(2, 3, s, s) for s in sizes)
    names = onnx_input_names(sizes)
    module = module.eval()
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            examples,
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes={**{name: {0: "batch"} for name in names}, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def onnx_session(path: Path, threads: int | None = None):  # noqa: ANN201 - optional dependency
    import os

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
