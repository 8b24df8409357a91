"""Which ONNX graph scores a model file, found and checked with ONNX Runtime alone (no PyTorch,
no ``onnx`` package: ``leaf score`` starts in a fraction of a second).

Every graph derived from a model file records that file's SHA-256 (``MODEL_SHA_KEY`` in the
graph's metadata) and is used only for that file (``graph_matches``): a model replaced by
another keeps no stale graph, whatever the file dates say. Derived graphs are cached by that
hash (``cache_path``: ``<cache>/graphs/<sha16>…``, in ``defaults.default_cache``) and written
to a temporary file renamed into place (``atomic_output``), so an interrupted export never
leaves a truncated graph behind. Only building a graph needs PyTorch (``model.onnx_export``,
which the caller passes in and imports then: this module imports nothing of it)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from leafiqa.defaults import default_cache
from leafiqa.errors import ConfigError

log = logging.getLogger(__name__)
MODEL_SHA_KEY = "leaf_model_sha256"
PARITY_KEY = "leaf_int8_parity"
MIN_SRCC = 0.99
PRECISIONS = ("auto", "fp32", "int8")
Loaded = TypeVar("Loaded")


def model_sha256(model_path: str | Path) -> str:
    """SHA-256 (hex) of a model file's bytes: what binds a derived graph to it."""
    digest = hashlib.sha256()
    with Path(model_path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(model_path: str | Path, suffix: str = ".onnx", sha: str | None = None) -> Path:
    """Where a graph derived from ``model_path`` is cached: keyed by the file's hash."""
    sha = sha or model_sha256(model_path)
    return default_cache() / "graphs" / f"{sha[:16]}{suffix}"


@contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """A temporary path beside ``output``, renamed onto it when the block succeeds (and
    removed when it fails): readers see the old file or the whole new one, never a part."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)


def _session(source: str | Path | bytes, threads: int, optimise: bool,
             save_to: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.log_severity_level = 3  # no warnings about the graph on stderr
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    source = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def optimised_cache_path(graph: Path) -> Path:
    """Where ONNX Runtime's fully optimised copy of ``graph`` is cached. Such a copy holds
    layouts for this CPU's vector width, so it is keyed by the graph file (path, size, date),
    ONNX Runtime's version and the CPU's flags: another machine sharing the home folder, a new
    ONNX Runtime or a re-exported graph never reads it."""
    import platform

    import onnxruntime as ort

    stat = graph.stat()
    flags = next((line for line in _cpuinfo().splitlines() if line.startswith("flags")),
                 platform.processor())
    key = "|".join([str(graph.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
                    ort.__version__, platform.machine(), flags])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return default_cache() / "graphs" / "optimised" / f"{digest}.onnx"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def load_session(source: str | Path | bytes, threads: int = 1,
                 optimise: bool = True) -> Any:
    """An ONNX Runtime CPU session (``optimise`` False: only to read the graph's metadata).
    An optimised session of a graph file is made from ONNX Runtime's optimised copy of it,
    saved on first use (``optimised_cache_path``): a session then starts in a fifth of the time
    (the graph's metadata, which the checks read, is kept in the copy)."""
    if not optimise or isinstance(source, bytes):
        return _session(source, threads, optimise)
    graph = Path(source)
    try:
        cached = optimised_cache_path(graph)
    except OSError:  # a graph that cannot be read: ONNX Runtime says why
        return _session(graph, threads, True)
    if cached.is_file():
        try:
            return _session(cached, threads, False)
        except Exception:  # noqa: BLE001 - a damaged copy: made again below
            log.warning("%s is damaged; optimising %s again", cached, graph)
    try:
        with atomic_output(cached) as temporary:
            return _session(graph, threads, True, save_to=temporary)
    except OSError:  # an unwritable cache: scoring goes on without it
        return _session(graph, threads, True)


def session_metadata(session: Any) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


def try_session(path: Path, open_session: Callable[[Path], Loaded]) -> Loaded | None:
    """``open_session(path)``, or None when the file is missing, truncated or not ONNX."""
    if not path.is_file():
        return None
    try:
        return open_session(path)
    except Exception:  # noqa: BLE001 - ONNX Runtime raises several kinds on damaged files
        return None


def graph_metadata(path: str | Path) -> dict[str, str] | None:
    """A graph's metadata, or None when the file is missing, truncated or not ONNX."""
    session = try_session(Path(path), lambda p: load_session(p, optimise=False))
    return None if session is None else session_metadata(session)


def recorded_for(metadata: dict[str, str] | None, model_sha: str) -> bool:
    """Whether graph metadata records the model file with hash ``model_sha`` (a prefix of
    ≥ 16 hex digits, as INT8 parity records keep, matches too)."""
    recorded = (metadata or {}).get(MODEL_SHA_KEY, "")
    return len(recorded) >= 16 and model_sha.startswith(recorded)


def graph_matches(path: str | Path, model_sha: str) -> bool:
    """Whether ``path`` is a whole graph derived from the model file with hash ``model_sha``."""
    return recorded_for(graph_metadata(path), model_sha)


def cached_graph(model_path: str | Path, path: Path,
                 export: Callable[[str | Path, Path], Path]) -> Path:
    """``path`` when it is a whole graph of this model file, else exported there anew (a
    missing, truncated, damaged or foreign graph is rebuilt, with a warning for the last
    three)."""
    if graph_matches(path, model_sha256(model_path)):
        return path
    if path.exists():
        log.warning("%s is damaged, from an older LEAF or from another model file (it does "
                    "not record this file's SHA-256); rebuilding it", path)
    return export(model_path, path)


@dataclass(frozen=True)
class Parity:
    """INT8 against FP32 on ``images`` held-out training images (scores on the model's scale)."""

    images: int
    calibration_images: int
    srcc: float
    mean_abs_diff: float
    max_abs_diff: float
    fp32_score_std: float
    accepted: bool
    quant_format: str
    model_sha: str
    created: str
    # what was quantized (absent in records written before they were recorded)
    fp32_blocks: int | None = None
    quantized_ops: str = ""

    def summary(self) -> str:
        verdict = "accepted" if self.accepted else f"REJECTED (SRCC < {MIN_SRCC})"
        return (f"INT8 vs FP32 on {self.images} held-out images: SRCC {self.srcc:.4f}, mean |Δ| "
                f"{self.mean_abs_diff:.4f}, max |Δ| {self.max_abs_diff:.4f} (FP32 score std "
                f"{self.fp32_score_std:.4f}); calibrated on {self.calibration_images} — {verdict}")


def int8_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".int8.onnx")


def parity_record(metadata: dict[str, str] | None) -> Parity | None:
    """The parity record in an INT8 graph's metadata (None when it has none)."""
    if metadata is None or PARITY_KEY not in metadata:
        return None
    try:
        return Parity(**json.loads(metadata[PARITY_KEY]))
    except (ValueError, TypeError):
        return None


def read_parity(onnx_path: str | Path) -> Parity | None:
    """The parity record of an INT8 graph (None when it has none, or the file is truncated,
    damaged or not ONNX: such a graph is never used)."""
    return parity_record(graph_metadata(onnx_path))


def graph_engine(parity: Parity | None) -> str:
    """What a pixel graph scores with: ``onnx-int8`` for an INT8 graph (it has a parity
    record), ``onnx`` for the FP32 one."""
    return "onnx-int8" if parity is not None else "onnx"


def _usable_int8(model_path: Path, metadata: dict[str, str] | None, sha: str,
                 precision: str) -> Parity | None:
    path = int8_path(model_path)
    parity = parity_record(metadata)
    if parity is None or not sha.startswith(parity.model_sha):
        log.warning("%s is damaged or belongs to another model file; ignored", path)
        return None
    if not parity.accepted:
        log.warning("%s failed its parity check (%s); scoring in FP32", path, parity.summary())
        return None if precision == "auto" else parity
    return parity


def open_pixel_graph(model_path: str | Path, precision: str,
                     open_session: Callable[[Path], Loaded],
                     metadata: Callable[[Loaded], dict[str, str]],
                     export: Callable[[Path, Path], object],
                     ) -> tuple[Path, Parity | None, Loaded]:
    """The uint8-pixel graph that scores ``model_path``, opened by ``open_session``: the INT8
    graph ``MODEL.int8.onnx`` when it belongs to this model file and passed its parity check
    (``precision`` auto) or whenever it is this file's (int8), else the FP32 pixel graph cached
    by the file's hash, written by ``export(model_path, graph_path)`` (the caller's, which
    imports PyTorch then) when it is missing, damaged or another file's. Each graph is checked
    from the metadata of what ``open_session`` opened, so a scoring session is opened once."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}' (auto, fp32 or int8)")
    model_path = Path(model_path)
    sha = model_sha256(model_path)
    int8 = int8_path(model_path)
    if precision != "fp32" and int8.is_file():
        opened = try_session(int8, open_session)
        parity = _usable_int8(model_path, None if opened is None else metadata(opened), sha,
                              precision)
        if parity is not None and opened is not None:
            return int8, parity, opened
    if precision == "int8":
        raise FileNotFoundError(
            f"{int8}: no usable INT8 graph for this model; run "
            f"`leaf export {model_path} --quantize int8 --data TRAIN_IMAGES`")
    path = cache_path(model_path, "-pixels.onnx", sha)
    opened = try_session(path, open_session)
    if opened is not None and recorded_for(metadata(opened), sha):
        return path, None, opened
    if path.exists():
        log.warning("%s is damaged, from an older LEAF or from another model file (it does "
                    "not record this file's SHA-256); rebuilding it", path)
    export(model_path, path)
    return path, None, open_session(path)
