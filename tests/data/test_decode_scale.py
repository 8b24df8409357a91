"""A large JPEG is decoded at the smallest DCT scale that still covers twice the largest size the
model reads (``decode_side``), and gives the pixels whole decoding gives, within a level or two;
anything smaller, and every other format, is decoded whole, to the very pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leafiqa.data.images import (
    decode_bytes_rgb,
    decode_side,
    load_model_inputs,
    load_pixels,
    open_rgb,
    to_model_inputs,
    to_pixels,
)
from leafiqa.data.pixels import input_pixels
from tests.hostile import photo, save_exif_rotated

SIZES = (64, 96)  # decode side 192


def camera_like(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A smooth picture with sensor-like noise, as a JPEG of ``width``×``height``."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(photo(seed, 120, 90)).resize((width, height), Image.BICUBIC)
    noisy = np.asarray(base, np.float32) + rng.normal(0, 4, (height, width, 3))
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def whole_pixels(path: Path, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    return to_pixels(open_rgb(path), sizes)


def test_the_decode_side_is_twice_the_largest_size() -> None:
    assert decode_side((224, 512)) == 1024
    assert decode_side((224,)) == 448
    assert decode_side(SIZES) == 192


@pytest.mark.parametrize(("size", "decoded"), [((2400, 1800), (300, 225)),
                                               ((1600, 1200), (400, 300)),
                                               ((800, 600), (400, 300)),
                                               ((760, 383), (760, 383))])
def test_a_large_jpeg_is_decoded_at_the_scale_that_covers_the_decode_side(
        tmp_path: Path, size: tuple[int, int], decoded: tuple[int, int]) -> None:
    path = camera_like(tmp_path / "big.jpg", *size)
    image = open_rgb(path, draft_side=decode_side(SIZES))
    assert image.size == decoded and min(image.size) >= decode_side(SIZES)
    assert open_rgb(path).size == size  # no draft side: decoded whole


def test_reduced_scale_pixels_match_whole_decoding(tmp_path: Path) -> None:
    path = camera_like(tmp_path / "big.jpg", 2400, 1800)
    for fast, whole in zip(load_pixels(path, SIZES), whole_pixels(path, SIZES), strict=True):
        assert fast.shape == whole.shape and fast.dtype == np.uint8
        difference = np.abs(fast.astype(np.int16) - whole.astype(np.int16))
        assert 0 < difference.mean() < 1.0 and difference.max() <= 3
    # the float inputs the PyTorch path reads come from the same decoding
    for float_input, fast in zip(load_model_inputs(path, SIZES),
                                 to_model_inputs(open_rgb(path, draft_side=192), SIZES),
                                 strict=True):
        np.testing.assert_array_equal(float_input, fast)


def test_small_jpegs_and_other_formats_are_decoded_whole(tmp_path: Path) -> None:
    small = camera_like(tmp_path / "small.jpg", 700, 380)  # short side < 2 × 192
    png = tmp_path / "big.png"
    Image.open(camera_like(tmp_path / "source.jpg", 1600, 1200)).save(png)
    for path in (small, png):
        for got, want in zip(load_pixels(path, SIZES), whole_pixels(path, SIZES), strict=True):
            np.testing.assert_array_equal(got, want)


def test_files_and_their_bytes_give_the_same_pixels(tmp_path: Path) -> None:
    path = camera_like(tmp_path / "big.jpg", 1600, 1200)
    from_file = input_pixels(path, SIZES)
    from_bytes = input_pixels(path.read_bytes(), SIZES)
    for a, b, c in zip(from_file, from_bytes, load_pixels(path, SIZES), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert decode_bytes_rgb(path.read_bytes(), draft_side=192).size == (400, 300)


def test_exif_orientation_is_applied_after_a_reduced_decoding(tmp_path: Path) -> None:
    upright = np.asarray(Image.fromarray(photo(3, 120, 90)).resize((900, 1200), Image.BICUBIC))
    path = save_exif_rotated(tmp_path / "portrait.jpg", upright)
    assert Image.open(path).size == (1200, 900)  # stored turned
    image = open_rgb(path, draft_side=192)
    assert image.size == (225, 300)  # upright, at 1/4 scale
    reference = Image.fromarray(upright).resize(image.size, Image.BILINEAR)
    assert np.abs(np.asarray(image, np.int16) - np.asarray(reference, np.int16)).mean() < 6


def test_an_upright_image_is_not_copied(tmp_path: Path) -> None:
    from leafiqa.data.images import to_rgb

    image = Image.open(camera_like(tmp_path / "a.jpg", 200, 150))
    image.load()
    assert to_rgb(image) is image  # no EXIF orientation: nothing to turn, nothing copied
