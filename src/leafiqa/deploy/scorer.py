"""Scoring images with a saved LEAF model: batched, parallel decoding, PyTorch or ONNX Runtime."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from leafiqa.data.images import image_from_any, to_model_inputs, to_pixels
from leafiqa.deploy.modelfile import ModelInfo, load_network
from leafiqa.deploy.onnx_export import PixelInputs
from leafiqa.deploy.pixel_graph import (
    PixelGraphScorer,
    ScoredBatch,
    check_one_array_per_size,
    default_lanes,
    iter_scored,
)
from leafiqa.deploy.registry import resolve_model
from leafiqa.errors import ConfigError
from leafiqa.student.onnx_runtime import onnx_available, onnx_input_names, onnx_session

if TYPE_CHECKING:
    from leafiqa.deploy.quantize import Parity

log = logging.getLogger(__name__)


def _onnx_cache_path(model_path: Path, suffix: str = ".onnx") -> Path:
    from leafiqa.deploy.onnx_export import model_sha256

    return Path.home() / ".cache" / "leaf" / f"{model_sha256(model_path)[:16]}{suffix}"


class Scorer:
    """``Scorer("model.leaf")(image)`` → calibrated quality score, like a pyiqa metric.

    ``runtime``: ``torch``, ``onnx`` or ``auto`` (ONNX Runtime when installed: about 3× faster
    on small CPUs). The ONNX graph is exported once and cached beside the user's cache.

    ``precision`` (ONNX only): ``auto`` runs the INT8 graph ``MODEL.int8.onnx`` written by
    ``leaf export --quantize int8`` when it belongs to this model file and its parity check
    passed, else FP32; ``int8`` insists on it; ``fp32`` never uses it."""

    def __init__(self, model_path: str | Path, runtime: str = "auto",
                 threads: int | None = None, precision: str = "auto") -> None:
        self.model_path = resolve_model(model_path)
        self.network, self.info = load_network(self.model_path)
        if runtime == "auto":
            runtime = "onnx" if onnx_available() else "torch"
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
        self._pixel_module: PixelInputs | None = None
        if threads:
            torch.set_num_threads(threads)
        self._session = None
        if runtime == "torch":
            self.network = self.network.to(  # type: ignore[call-overload]
                memory_format=torch.channels_last)

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
            from leafiqa.deploy.onnx_export import (
                cached_graph,
                export_model_onnx,
                graph_matches,
                model_sha256,
            )

            onnx_path = self.model_path.with_suffix(".onnx")
            if not graph_matches(onnx_path, model_sha256(self.model_path)):
                if onnx_path.is_file():
                    log.warning("%s was not exported from %s (its recorded hash differs); "
                                "ignored", onnx_path, self.model_path)
                onnx_path = cached_graph(self.model_path, _onnx_cache_path(self.model_path),
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
        """The uint8-pixel ONNX graph ``leaf score`` runs (see ``pixel_graph``); sets
        ``parity``."""
        path, self.parity = pixel_graph(self.model_path, self.precision)
        return path

    def _pixel_graph_for(self) -> PixelGraphScorer:
        if self._pixel_graph is None:
            path = self.pixel_graph_path()
            self._pixel_graph = PixelGraphScorer(path, self.threads, graph_engine(self.parity))
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
            names = onnx_input_names(self.input_sizes)
            feed = {name: level.astype(np.float32) for name, level in zip(names, levels,
                                                                           strict=True)}
            return self._session_for().run(None, feed)[0]
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
        rgb = [image_from_any(image, f"images[{i}]") for i, image in enumerate(images)]
        per_image = [to_pixels(image, self.input_sizes) for image in rgb]
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


def pixel_graph(model_path: Path, precision: str = "auto") -> tuple[Path, Parity | None]:
    """The uint8-pixel ONNX graph that scores ``model_path`` and, for an INT8 graph, its parity
    record: ``MODEL.int8.onnx`` when it belongs to this model file and passed its parity check
    (``precision`` auto) or whenever it exists (int8), else the FP32 pixel graph, exported once
    into the cache. The graph alone scores (``PixelGraphScorer``): no PyTorch needed then."""
    from leafiqa.deploy.onnx_export import cached_graph, export_pixel_onnx, model_sha256
    from leafiqa.deploy.quantize import int8_path, read_parity

    if precision not in {"auto", "fp32", "int8"}:
        raise ConfigError(f"unknown precision '{precision}' (auto, fp32 or int8)")
    path = int8_path(model_path)
    parity = None
    if precision != "fp32" and path.is_file():
        parity = read_parity(path)
        if parity is None or not model_sha256(model_path).startswith(parity.model_sha):
            log.warning("%s is damaged or belongs to another model file; ignored", path)
            parity = None
        elif not parity.accepted:
            log.warning("%s failed its parity check (%s); scoring in FP32", path,
                        parity.summary())
            parity = None if precision == "auto" else parity
    if precision == "int8" and parity is None:
        raise FileNotFoundError(
            f"{path}: no usable INT8 graph for this model; run "
            f"`leaf export {model_path} --quantize int8 --data TRAIN_IMAGES`")
    if parity is None:
        path = cached_graph(model_path, _onnx_cache_path(model_path, "-pixels.onnx"),
                            export_pixel_onnx)
    return path, parity


def graph_engine(parity: Parity | None) -> str:
    """What a pixel graph scores with: ``onnx-int8`` for an INT8 graph (it has a parity
    record), ``onnx`` for the FP32 one."""
    return "onnx-int8" if parity is not None else "onnx"


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
