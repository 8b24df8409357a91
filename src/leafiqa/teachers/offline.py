"""An offline stand-in for an MLLM teacher: classical no-reference quality cues.

It runs on a CPU with nothing downloaded and is *not* an MLLM. Cues:

- BRISQUE (OpenCV's ``quality`` module with the LIVE-trained SVR files of Debian's
  ``opencv-data``; lower = better),
- sharpness: log-variance of the Laplacian of the grey image,
- exposure/contrast: grey-level spread with a penalty for clipped shadows and highlights.

Each cue is mapped to [0, 1] by a fixed logistic with a priori centre and scale taken from
typical natural-image statistics (never fitted to any MOS), and the cues are averaged with equal
weights. The five-level distribution is a Gaussian kernel over the level values around that
score, wider when the cues disagree, so disagreement shows up as lower reliability. Pair-wise, it
compares the two images cue by cue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leafiqa.data.images import ImageDecodeError, open_rgb
from leafiqa.data.manifest import ImageItem
from leafiqa.teachers.protocol import FIVE_LEVELS, Teacher, TeacherError, level_values

BRISQUE_DIRS = (
    "/usr/share/opencv4/quality",
    "/usr/share/opencv/quality",
    "/usr/local/share/opencv4/quality",
)

# (centre, scale, direction): quality = sigmoid(direction * (value - centre) / scale)
CUE_PRIORS: dict[str, tuple[float, float, float]] = {
    "brisque": (40.0, 12.0, -1.0),
    "sharpness": (5.0, 1.2, 1.0),
    "exposure": (0.18, 0.06, 1.0),
}


def find_brisque_files() -> tuple[Path, Path]:
    candidates = [os.environ["LEAF_BRISQUE_DIR"]] if "LEAF_BRISQUE_DIR" in os.environ else []
    for folder in [*candidates, *BRISQUE_DIRS]:
        model = Path(folder) / "brisque_model_live.yml"
        ranges = Path(folder) / "brisque_range_live.yml"
        if model.is_file() and ranges.is_file():
            return model, ranges
    raise FileNotFoundError(
        "BRISQUE model files (brisque_model_live.yml, brisque_range_live.yml) not found in "
        f"{[*candidates, *BRISQUE_DIRS]}: install Debian's opencv-data "
        "(`apt-get install opencv-data`) or set LEAF_BRISQUE_DIR"
    )


@dataclass(frozen=True)
class CueValues:
    brisque: float
    sharpness: float
    exposure: float

    def qualities(self) -> np.ndarray:
        values = {"brisque": self.brisque, "sharpness": self.sharpness, "exposure": self.exposure}
        out = []
        for name, (centre, scale, direction) in CUE_PRIORS.items():
            out.append(1.0 / (1.0 + np.exp(-direction * (values[name] - centre) / scale)))
        return np.asarray(out)


def read_bgr(path: Path) -> np.ndarray:
    """The image as OpenCV's BGR array, decoded by LEAF's one decoding path (bomb limit, EXIF
    orientation, 16-bit and float modes) so the cues see what the student sees."""
    try:
        rgb = open_rgb(path)
    except ImageDecodeError as error:
        raise TeacherError(str(error)) from None
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


class CueTeacher(Teacher):
    """Offline no-download teacher from classical NR-IQA cues (see module docstring)."""

    teacher_id = "leaf-cues"
    prompt_version = "cues-v1"
    levels = FIVE_LEVELS
    supports_pairs = True

    def __init__(self, max_side: int = 1024, cache_size: int = 100_000) -> None:
        model, ranges = find_brisque_files()
        self._brisque = cv2.quality.QualityBRISQUE_create(  # type: ignore[attr-defined]
            str(model), str(ranges))
        self._max_side = max_side
        self._cache: dict[Path, CueValues] = {}
        self._cache_size = cache_size

    def cues(self, item: ImageItem) -> CueValues:
        cached = self._cache.get(item.path)
        if cached is not None:
            return cached
        image = read_bgr(item.path)
        longest = max(image.shape[:2])
        if longest > self._max_side:  # cues are scale-dependent; compare images at ≤ max_side
            factor = self._max_side / longest
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        brisque = float(self._brisque.compute(image)[0])
        sharpness = float(np.log(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var() + 1e-6))
        grey_unit = grey.astype(np.float32) / 255.0
        clipped = float(np.mean((grey <= 2) | (grey >= 253)))
        exposure = float(grey_unit.std()) * (1.0 - clipped)
        values = CueValues(brisque=brisque, sharpness=sharpness, exposure=exposure)
        if len(self._cache) < self._cache_size:
            self._cache[item.path] = values
        return values

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        qualities = self.cues(item).qualities()
        centre = float(qualities.mean())
        width = 0.12 + 0.5 * float(qualities.std())
        values = level_values(len(self.levels))
        weights = np.exp(-0.5 * ((values - centre) / width) ** 2)
        return (weights / weights.sum()).tolist(), "cues"

    def first_better_prob(self, first: ImageItem, second: ImageItem) -> tuple[float, str]:
        difference = self.cues(first).qualities() - self.cues(second).qualities()
        per_cue = 1.0 / (1.0 + np.exp(-difference / 0.05))
        return float(per_cue.mean()), "cues"
