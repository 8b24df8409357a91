"""``load_model(path)(image)`` (the Scorer behind ``leaf score``) decodes any image type like
a file (issue 13, item 2): float arrays in [0, 1], tensors, lists and every PIL mode give the
score of the same picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leafiqa
from leafiqa.data.manifest import DataError
from tests.hostile import photo, save_exif_rotated, save_png16_grey


def test_any_image_type_scores_like_the_file(model_file: Path, tmp_path: Path) -> None:
    metric = leafiqa.load_model(model_file, runtime="torch")
    picture = photo(3, 96, 96)
    Image.fromarray(picture).save(tmp_path / "p.png")
    reference = metric(tmp_path / "p.png")
    as_float = picture.astype(np.float32) / 255.0
    for value in (picture, as_float, torch.from_numpy(as_float).permute(2, 0, 1),
                  picture.tolist(), Image.fromarray(picture).convert("RGBA"),
                  Image.fromarray(picture).convert("P")):
        assert metric(value) == pytest.approx(reference, abs=0.05)
    grey = Image.fromarray(picture).convert("L")
    grey.save(tmp_path / "g.png")
    assert metric(grey) == pytest.approx(metric(tmp_path / "g.png"), abs=1e-4)
    with pytest.raises(DataError, match="not an image"):
        metric(["a", "b"])


def test_16_bit_and_rotated_files_score_like_their_plain_twins(model_file: Path,
                                                                tmp_path: Path) -> None:
    from leafiqa.data.images import open_rgb

    metric = leafiqa.load_model(model_file, runtime="torch")
    picture = photo(5, 120, 80)
    Image.fromarray(picture[..., 0]).save(tmp_path / "g8.png")
    save_png16_grey(tmp_path / "g16.png", picture[..., 0])
    Image.fromarray(picture).save(tmp_path / "up.jpg", quality=98)
    save_exif_rotated(tmp_path / "rot.jpg", picture)
    for twin, plain in (("g16.png", "g8.png"), ("rot.jpg", "up.jpg")):
        # what the network reads (a small random head barely separates scores)
        seen = metric.preprocess(open_rgb(tmp_path / twin))[0]
        expected = metric.preprocess(open_rgb(tmp_path / plain))[0]
        assert np.abs(seen - expected).mean() < 0.05, twin
        assert metric(tmp_path / twin) == pytest.approx(metric(tmp_path / plain), abs=0.02)
