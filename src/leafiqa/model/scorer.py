"""Scoring images with a saved LEAF model: batched, parallel decoding, PyTorch or ONNX Runtime.

With ONNX Runtime (the default when it is installed) scoring imports neither PyTorch nor the
``onnx`` package nor SciPy: the model file's metadata is read by ``model.modelinfo``, its
uint8-pixel graph found and checked by ``model.graphs``; PyTorch is imported only to build a
graph that is not cached yet, or to score with ``runtime="torch"``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from leafiqa.data.images import to_model_inputs
from leafiqa.data.pixels import input_pixels
from leafiqa.errors import ConfigError
from leafiqa.model.graphs import (
    Parity,
    cache_path,
    graph_engine,
    load_session,
    open_pixel_graph,
    session_metadata,
)
from leafiqa.model.modelinfo import ModelInfo, read_info
from leafiqa.model.pixel_graph import (
    PixelGraphScorer,
    ScoredBatch,
    check_one_array_per_size,
    default_lanes,
    iter_scored,
)
from leafiqa.model.registry import resolve_model

if TYPE_CHECKING:
    from leafiqa.model.file import LeafNetwork
    from leafiqa.model.onnx_export import PixelInputs

log = logging.getLogger(__name__)


def export_pixels(model_path: Path, graph: Path) -> None:
    """Write the uint8-pixel graph of ``model_path`` to ``graph`` (imports PyTorch)."""
    from leafiqa.model.onnx_export import export_pixel_onnx

    export_pixel_onnx(model_path, graph)


def pixel_graph(model_path: str | Path, precision: str = "auto") -> tuple[Path, Parity | None]:
    """The path of the uint8-pixel graph that scores ``model_path`` and, for an INT8 graph,
    its parity record (``graphs.open_pixel_graph``; for callers that ship the graph elsewhere,
    as the Ray engine does)."""
    path, parity, _ = open_pixel_graph(model_path, precision,
                                       lambda p: load_session(p, optimise=False),
                                       session_metadata, export_pixels)
    return path, parity


def _onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class Scorer:
    """``Scorer("model.leaf")(image)`` → calibrated quality score, like a pyiqa metric.

    ``runtime``: ``torch``, ``onnx`` or ``auto`` (ONNX Runtime when installed: faster than
    eager PyTorch on a CPU, docs/results/speed.md). The ONNX graph is exported once and cached
    beside the user's cache.

    ``precision`` (ONNX only): ``auto`` runs the INT8 graph ``MODEL.int8.onnx`` written by
    ``leaf export --quantize int8`` when it belongs to this model file and its parity check
    passed, else FP32; ``int8`` insists on it; ``fp32`` never uses it."""

    def __init__(self, model_path: str | Path, runtime: str = "auto",
                 threads: int | None = None, precision: str = "auto") -> None:
        self.model_path = resolve_model(model_path)
        self.info = read_info(self.model_path)
        self._network: LeafNetwork | None = None
        if runtime == "auto":
            runtime = "onnx" if _onnx_available() else "torch"
        if runtime not in {"torch", "onnx"}:
            raise ConfigError(f"unknown runtime '{runtime}' (torch, onnx or auto)")
        if precision not in {"auto", "fp32", "int8"}:
            raise ConfigError(f"unknown precision '{precision}' (auto, fp32 or int8)")
        if precision == "int8" and runtime != "onnx":
            raise ConfigError("INT8 scoring needs the ONNX runtime (pip install 'leaf-iqa[onnx]')")
        self.runtime = runtime
        self.precision = precision
        self.parity: Parity | None = None  # the INT8 graph's parity record, once it is in use
        self.threads = threads
        self._pixel_graph: PixelGraphScorer | None = None
        self._graph_path: Path | None = None
        self._pixel_module: PixelInputs | None = None
        self._session = None
        # what scores is loaded now, so a damaged model file (or a missing INT8 graph) fails
        # here, not at the first image
        if runtime == "torch":
            import torch

            if threads:
                torch.set_num_threads(threads)
            self.network  # noqa: B018
        else:
            self._pixel_graph_for()

    @property
    def network(self) -> LeafNetwork:
        """The PyTorch network (loaded on first use: scoring with ONNX Runtime needs none)."""
        if self._network is None:
            import torch

            from leafiqa.model.file import load_network

            network, _ = load_network(self.model_path)
            self._network = network.to(  # type: ignore[call-overload]
                memory_format=torch.channels_last) if self.runtime == "torch" else network
        return self._network

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return self.info.input_sizes

    def preprocess(self, image: Image.Image) -> tuple[np.ndarray, ...]:
        """The image as the network reads it: one normalised CHW array per input size."""
        return to_model_inputs(image, self.input_sizes)

    def _session_for(self):  # noqa: ANN202
        """The float-input graph: ``MODEL.onnx`` beside the model file when it records this
        file's hash (``leaf export`` writes it), else the cached one, rebuilt when missing,
        damaged or another model's."""
        if self._session is None:
            from leafiqa.model.graphs import cached_graph, graph_matches, model_sha256
            from leafiqa.model.onnx_export import export_model_onnx
            from leafiqa.student.onnx_runtime import onnx_session

            onnx_path = self.model_path.with_suffix(".onnx")
            if not graph_matches(onnx_path, model_sha256(self.model_path)):
                if onnx_path.is_file():
                    log.warning("%s was not exported from %s (its recorded hash differs); "
                                "ignored", onnx_path, self.model_path)
                onnx_path = cached_graph(self.model_path, cache_path(self.model_path),
                                         export_model_onnx)
            self._session = onnx_session(onnx_path, self.threads)
        return self._session

    @property
    def engine(self) -> str:
        """What scores: ``torch``, ``onnx`` (FP32) or ``onnx-int8``."""
        if self.runtime == "onnx":
            return self._pixel_graph_for().engine
        return "torch"

    def pixel_graph_path(self) -> Path:
        """The uint8-pixel ONNX graph ``leaf score`` runs (see ``graphs.open_pixel_graph``);
        sets ``parity``."""
        self._pixel_graph_for()
        assert self._graph_path is not None
        return self._graph_path

    def _pixel_graph_for(self) -> PixelGraphScorer:
        if self._pixel_graph is None:
            self._graph_path, self.parity, scorer = open_pixel_graph(
                self.model_path, self.precision, lambda p: PixelGraphScorer(p, self.threads),
                lambda opened: opened.metadata, export_pixels)
            scorer.engine = graph_engine(self.parity)
            self._pixel_graph = scorer
        return self._pixel_graph

    @property
    def lanes(self) -> int:
        """Batches scored at once by ``iter_scores``: with ONNX one single-threaded run per
        core (see ``default_lanes``)."""
        return default_lanes(self.threads) if self.runtime == "onnx" else 1

    def score_pixels(self, *pixels: np.ndarray) -> np.ndarray:
        """One (B, S, S, 3) uint8 array per input size (decoded, resized, not normalised) →
        (B,) scores; the fast path ``leaf score`` runs (INT8 when available)."""
        if self.runtime == "onnx":  # the pixel graph checks its inputs itself
            return self._pixel_graph_for().score_pixels(*pixels)
        check_one_array_per_size(pixels, self.input_sizes)
        if pixels[0].shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        import torch

        from leafiqa.model.onnx_export import PixelInputs

        if self._pixel_module is None:
            self._pixel_module = PixelInputs(self.network).eval()
        with torch.inference_mode():
            return self._pixel_module(*(torch.from_numpy(p) for p in pixels)).numpy()

    def score_array(self, *levels: np.ndarray) -> np.ndarray:
        """One (B, 3, S, S) normalised pixel array per input size → (B,) scores."""
        check_one_array_per_size(levels, self.input_sizes)
        if levels[0].shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if self.runtime == "onnx":
            from leafiqa.student.onnx_runtime import onnx_input_names

            names = onnx_input_names(self.input_sizes)
            feed = {name: level.astype(np.float32) for name, level in zip(names, levels,
                                                                           strict=True)}
            return self._session_for().run(None, feed)[0]
        import torch

        with torch.inference_mode():
            batches = [torch.from_numpy(level).contiguous(memory_format=torch.channels_last)
                       for level in levels]
            return self.network(*batches).numpy()

    def __call__(self, image: str | Path | Image.Image | np.ndarray | Any) -> float:
        """One image: a path, bytes, PIL image (any mode), array or tensor (H×W, H×W×C or
        C×H×W; float in [0, 1], uint8, uint16) — decoded as ``leaf score`` decodes files."""
        return float(self.score_images([image])[0])

    def score_images(self, images: Sequence[Any]) -> np.ndarray:
        if not images:
            return np.zeros(0, dtype=np.float32)
        per_image = [input_pixels(image, self.input_sizes, f"images[{i}]")
                     for i, image in enumerate(images)]
        return self.score_pixels(*(np.stack([levels[k] for levels in per_image])
                                   for k in range(len(self.input_sizes))))

    def iter_scores(self, paths: Sequence[Path], batch_size: int = 8,
                    workers: int | None = None) -> Iterator[ScoredBatch]:
        """Scores batch by batch; ``workers`` decoding threads (default: CPU count, ≤ 4) run
        ahead of inference."""
        if self.runtime == "onnx":
            self._pixel_graph_for()  # export/load once here, not racing in the lanes
        return iter_scored(self.score_pixels, paths, self.input_sizes, self.lanes, batch_size,
                           workers)

    def score_paths(self, paths: Sequence[Path], batch_size: int = 8,
                    progress: bool = False) -> np.ndarray:
        """Scores in input order; NaN for an image that could not be decoded. A file listed
        several times is decoded once and gets its score at every position."""
        from tqdm.auto import tqdm

        out = np.full(len(paths), np.nan)
        positions: dict[Path, list[int]] = {}
        for index, path in enumerate(paths):
            positions.setdefault(Path(path), []).append(index)
        with tqdm(total=len(positions), unit="img", desc="scoring", disable=not progress) as bar:
            for batch in self.iter_scores(list(positions), batch_size):
                for path, score in zip(batch.paths, batch.scores, strict=True):
                    out[positions[path]] = score
                bar.update(len(batch.paths) + len(batch.failures))
        return out


def load_model(path: str | Path, runtime: str = "auto") -> Scorer:
    return Scorer(path, runtime=runtime)


def describe(info: ModelInfo) -> dict:
    return {
        "backbone": info.backbone,
        "input_size": list(info.input_sizes) if len(info.input_sizes) > 1 else info.input_sizes[0],
        "calibration": info.score_map.to_dict(),
        "output_calibration": info.output_map.to_dict(),
        "teacher_ids": info.teacher_ids,
        "manifest_hash": info.manifest_hash,
        "mos_range": info.mos_range,
        "created": info.created,
        "notes": info.notes,
        "score_range": info.score_range,
        "lower_better": False,
        "card": info.card,
        "provenance": info.provenance,
    }
