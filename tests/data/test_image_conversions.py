"""``image_from_any``: the one conversion of in-memory inputs that ``create_metric``, ``Scorer``
and the service share, checked conversion by conversion with generated images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from leafiqa.data.images import image_from_any
from leafiqa.errors import DataError

# derandomized: the same examples on every run and every machine
SETTINGS = settings(derandomize=True, max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
rgb_arrays = shapes.flatmap(lambda hw: hnp.arrays(np.uint8, (*hw, 3)))
grey_arrays = shapes.flatmap(lambda hw: hnp.arrays(np.uint8, hw))
INTEGER_DTYPES = [np.int16, np.int32, np.int64, np.uint32, np.uint64, np.int8]


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


@SETTINGS
@given(rgb_arrays, st.sampled_from(INTEGER_DTYPES))
def test_every_integer_dtype_of_0_to_255_reads_as_uint8(array: np.ndarray, dtype: type) -> None:
    if dtype is np.int8:
        array = array // 2  # int8 holds 0…127
    expected = pixels(image_from_any(array))
    assert np.array_equal(pixels(image_from_any(array.astype(dtype))), expected)
    if array.shape[1] not in (1, 3, 4):  # C×H×W is read as such when unambiguous
        channels_first = array.transpose(2, 0, 1).astype(dtype)
        assert np.array_equal(pixels(image_from_any(channels_first)), expected)


@SETTINGS
@given(rgb_arrays)
def test_floats_in_0_1_and_0_255_read_as_their_uint8(array: np.ndarray) -> None:
    expected = pixels(image_from_any(array))
    assert np.array_equal(pixels(image_from_any(array / 255.0)), expected)
    if array.max() > 1:  # [0, 255] floats are told apart from [0, 1] by their range
        assert np.array_equal(pixels(image_from_any(array.astype(np.float32))), expected)


@SETTINGS
@given(grey_arrays)
def test_uint16_and_16_bit_pil_modes_scale_not_clip(grey: np.ndarray) -> None:
    wide = grey.astype(np.uint16) * 257  # 8-bit values spread over 16 bits
    expected = np.repeat(grey[..., None], 3, axis=2)
    assert np.array_equal(pixels(image_from_any(wide)), expected)
    assert np.array_equal(pixels(image_from_any(Image.fromarray(wide))), expected)  # I;16


@SETTINGS
@given(grey_arrays)
def test_pil_mode_i_and_f_read_like_mode_l(grey: np.ndarray) -> None:
    expected = pixels(image_from_any(Image.fromarray(grey, "L")))
    assert np.array_equal(pixels(image_from_any(Image.fromarray(grey.astype(np.int32), "I"))),
                          expected)
    as_unit = Image.fromarray(grey.astype(np.float32) / 255.0, "F")
    assert np.array_equal(pixels(image_from_any(as_unit)), expected)
    if grey.max() > 1:
        as_bytes = Image.fromarray(grey.astype(np.float32), "F")
        assert np.array_equal(pixels(image_from_any(as_bytes)), expected)


@SETTINGS
@given(rgb_arrays, st.sampled_from(["RGB", "RGBA", "L", "LA", "CMYK", "YCbCr", "P", "1"]))
def test_every_pil_mode_reads_as_pils_own_rgb(array: np.ndarray, mode: str) -> None:
    image = Image.fromarray(array).convert(mode)
    assert np.array_equal(pixels(image_from_any(image)), np.asarray(image.convert("RGB")))


@SETTINGS
@given(rgb_arrays, st.sampled_from([bytes, bytearray, memoryview]))
def test_encoded_bytes_read_as_the_image(array: np.ndarray, kind: type) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    assert np.array_equal(pixels(image_from_any(kind(buffer.getvalue()))), array)


@SETTINGS
@given(rgb_arrays, st.sampled_from([(3, Image.Transpose.ROTATE_180),
                                    (6, Image.Transpose.ROTATE_270),
                                    (8, Image.Transpose.ROTATE_90)]))
def test_a_pil_image_with_an_exif_orientation_is_turned_upright(array: np.ndarray,
                                                                  orientation: tuple) -> None:
    tag, transpose = orientation
    exif = Image.Exif()
    exif[0x0112] = tag
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", exif=exif)
    opened = Image.open(io.BytesIO(buffer.getvalue()))
    expected = np.asarray(Image.fromarray(array).transpose(transpose))
    assert np.array_equal(pixels(image_from_any(opened)), expected)


@SETTINGS
@given(rgb_arrays.map(lambda a: a / 255.0), st.sampled_from([np.nan, np.inf, -np.inf]),
       st.data())
def test_nan_or_infinite_pixels_are_one_clear_error(array: np.ndarray, bad: float,
                                                    data: st.DataObject) -> None:
    row = data.draw(st.integers(0, array.shape[0] - 1))
    array[row, 0, 0] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        image_from_any(array)
    with pytest.raises(DataError, match="NaN or infinite"):
        image_from_any(Image.fromarray(array[..., 0].astype(np.float32), "F"))


@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0, 3), (0, 4, 4), (1, 3, 0, 4)])
def test_empty_inputs_are_one_clear_error(shape: tuple) -> None:
    with pytest.raises(DataError, match="empty"):
        image_from_any(np.zeros(shape, np.float32))
    with pytest.raises(DataError, match="empty"):
        image_from_any(b"")


def test_floats_outside_both_ranges_are_refused() -> None:
    with pytest.raises(DataError, match=r"\[0, 1\] or \[0, 255\]"):
        image_from_any(np.full((4, 4, 3), 300.0))
    with pytest.raises(DataError, match=r"\[0, 1\] or \[0, 255\]"):
        image_from_any(np.full((4, 4, 3), -0.5))
