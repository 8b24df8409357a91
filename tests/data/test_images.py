"""One decoding path (issue 13, items 1, 2 and 5): bombs, 16-bit and float images, EXIF
orientation, every PIL mode, unreadable files — each a counted failure with a reason or the
right pixels, never a crash or a silently wrong picture."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from leafiqa.data import images as images_module
from leafiqa.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_bytes_rgb,
    failure_reason,
    image_from_any,
    open_rgb,
    set_max_pixels,
)
from leafiqa.data.loader import iter_batches
from tests.hostile import bomb_png, photo, save_exif_rotated, save_png16_grey

MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
         "HSV", "I", "I;16", "I;16B", "I;16L", "F"]


def test_the_pixel_limit_is_pils_default_not_raised() -> None:
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS == 89_478_485
    assert images_module.max_pixels() == DEFAULT_MAX_PIXELS


def test_a_bomb_is_a_failure_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    bomb_png(path)
    with pytest.raises(ImageDecodeError) as caught:
        open_rgb(path)
    assert caught.value.reason == "too many pixels" and "bomb.png" in str(caught.value)
    # below PIL's hard stop (2× its limit) but above LEAF's limit: still refused, from the header
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_bytes_rgb(bomb_png(side=12_000), "mid.png")


def test_the_limit_can_be_raised_or_lowered_on_purpose(tmp_path: Path) -> None:
    Image.fromarray(photo()).save(tmp_path / "ok.png")
    try:
        set_max_pixels(5000)
        with pytest.raises(ImageDecodeError, match="too many pixels"):
            open_rgb(tmp_path / "ok.png")
    finally:
        set_max_pixels(None)
    assert open_rgb(tmp_path / "ok.png").size == (120, 80)


def test_a_bomb_in_a_batch_fails_only_itself(tmp_path: Path) -> None:
    good = [tmp_path / f"g{i}.png" for i in range(3)]
    for i, path in enumerate(good):
        Image.fromarray(photo(i)).save(path)
    paths = [good[0], bomb_png(tmp_path / "bomb.png") and tmp_path / "bomb.png", *good[1:]]
    batches = list(iter_batches(paths, 32, batch_size=4, workers=0))
    assert [i for b in batches for i in b.indices] == [0, 2, 3]
    (failure,) = [f for b in batches for f in b.failures]
    assert failure[0] == 1 and failure_reason(failure[1]) == "too many pixels"


def test_16_bit_png_decodes_like_its_8_bit_twin(tmp_path: Path) -> None:
    grey = photo()[..., 0]
    decoded = np.asarray(open_rgb(save_png16_grey(tmp_path / "g16.png", grey)))
    assert decoded.shape == (80, 120, 3)
    assert np.abs(decoded[..., 0].astype(int) - grey).max() <= 1  # old code: almost white


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = photo()
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=98)
    rotated = open_rgb(save_exif_rotated(tmp_path / "rotated.jpg", upright))
    reference = np.asarray(open_rgb(tmp_path / "upright.jpg")).astype(int)
    assert rotated.size == (120, 80)
    assert np.abs(np.asarray(rotated).astype(int) - reference).mean() < 4


def test_float_arrays_tensors_and_lists_are_images() -> None:
    import torch

    upright = photo()
    expected = np.asarray(image_from_any(upright)).astype(int)
    as_float = upright.astype(np.float32) / 255.0
    for value in (as_float, torch.from_numpy(as_float).permute(2, 0, 1), upright.tolist(),
                  upright.astype(np.uint16) * 257, Image.fromarray(upright)):
        decoded = np.asarray(image_from_any(value)).astype(int)
        assert decoded.shape == expected.shape and np.abs(decoded - expected).max() <= 1


@given(mode=st.sampled_from(MODES), width=st.integers(1, 40), height=st.integers(1, 40),
       seed=st.integers(0, 2**16))
@settings(max_examples=120, deadline=None)
def test_every_pil_mode_becomes_rgb(mode: str, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    image = image.convert(mode) if mode not in ("La", "RGBa", "LAB", "HSV") else Image.new(
        mode, (width, height))
    rgb = image_from_any(image)
    assert rgb.mode == "RGB" and rgb.size == (width, height)


@given(st.binary(max_size=2048))
@settings(max_examples=200, deadline=None)
def test_random_bytes_are_a_decode_error_or_an_image(data: bytes) -> None:
    try:
        image = decode_bytes_rgb(data, "upload")
    except ImageDecodeError as error:
        assert "upload" in str(error) and "BytesIO" not in str(error)
    else:
        assert image.mode == "RGB"


@given(st.binary(min_size=1, max_size=600), st.integers(0, 2000))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_corrupted_real_files_never_escape_as_other_errors(noise: bytes, offset: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo(1, 48, 32)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = offset % len(data)
    data[start : start + len(noise)] = noise
    with contextlib.suppress(ImageDecodeError):
        assert decode_bytes_rgb(bytes(data), "x.png").mode == "RGB"


def test_unreadable_file_is_a_counted_failure(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(photo()).save(path)

    def denied(file: object, *args: object, **kwargs: object) -> object:
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(path))
        return open(file, *args, **kwargs)  # noqa: SIM115

    monkeypatch.setattr(images_module, "open", denied, raising=False)
    batches = list(iter_batches([path], 32, workers=0))
    assert failure_reason(batches[0].failures[0][1]) == "permission denied"


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_unreadable_file_for_real(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    Image.fromarray(photo()).save(folder / "a.png")
    folder.chmod(0)
    try:
        with pytest.raises(ImageDecodeError, match="permission denied"):
            open_rgb(folder / "a.png")
    finally:
        folder.chmod(0o755)
