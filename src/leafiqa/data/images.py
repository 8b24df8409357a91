"""Decoding images into tensors the student reads, and content hashes that key judgments.

Every entry point (``leaf score``, ``evaluate``, ``run``, features, ``serve``, the Ray engine,
``create_metric``, ``Scorer``) turns a file into pixels the same way: ``open_rgb`` decodes it
for the sizes the model reads (``decode_side``: a JPEG at least twice as large is decoded at a
reduced DCT scale, 1/2, 1/4 or 1/8, that still keeps both sides ≥ ``DECODE_MARGIN`` × the
largest size; anything smaller, and every other format, is decoded whole), then ``to_pixels``
resizes it to each input size (PIL's antialiased bilinear filter over the whole image). In-memory
inputs (bytes, PIL images, arrays, tensors) go through ``image_from_any`` (bytes decoded as a
file is). Decoding refuses decompression bombs and formats outside ``ACCEPTED_FORMATS``,
applies EXIF orientation, maps every PIL mode (16-bit, float, palette, alpha, CMYK, …) to 8-bit
RGB, and turns any decoder failure into an ``ImageDecodeError`` whose message names the file
and a short reason."""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from leafiqa.errors import ConfigError, DataError

# PIL's own default (about 89 MP) unless raised on purpose: LEAF_MAX_IMAGE_PIXELS, or
# set_max_pixels(). Checked from the header, before any pixel is decoded.
DEFAULT_MAX_PIXELS = 89_478_485
MAX_PIXELS_ENV = "LEAF_MAX_IMAGE_PIXELS"

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Short reasons, so failures can be counted by kind (``failure_reason``).
REASONS = ("not found", "permission denied", "is a folder", "too many pixels", "too large",
           "not an image", "cannot decode")
# Raster image formats only: PostScript/EPS/PDF would reach Ghostscript, and the many exotic
# PIL plugins (FITS, GRIB, PSD, …) are attack surface no image-quality user needs. MPO is how
# many phone cameras' JPEGs open.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM", "TGA",
                    "JPEG2000", "AVIF", "QOI", "ICO")
# The formats PIL registers without loading every plugin (``Image.preinit``): tried first, so
# decoding a JPEG or PNG does not import the other plugins (``Image.init`` imports them all,
# which a one-image ``leaf score`` would wait for).
_COMMON_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "PPM")
# JPEG files, which libjpeg can decode at 1/2, 1/4 or 1/8 scale in the DCT (PIL's ``draft``).
_SCALABLE_FORMATS = ("JPEG", "MPO")
# A large JPEG is decoded no smaller than twice the largest size the model reads
# (``decode_side``): libjpeg's DCT scaling is then a first, anti-aliased reduction, and the
# resize's bilinear filter still spans two or more decoded pixels per output pixel. The resize
# itself filters the whole image in one step (no ``reducing_gap`` box reduction first): scores
# from the reduced-scale decoding then agree more closely with whole decoding, for a little more
# time per photo (benchmarks/scoring_speed.py measures both on 12-MP photos;
# docs/results/speed.md); images up to twice a size (every AGIQA-3K and clive-dev image) resize
# to the very same pixels either way.
DECODE_MARGIN = 2
# Leading bytes of documents PIL would otherwise hand to Ghostscript, for a clearer reason.
_DOCUMENT_MAGIC = ((b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
                   (b"%PDF", "PDF"))
_MEMORY_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


class ImageDecodeError(DataError):
    """An image file that is missing, unreadable, too large or cannot be decoded."""

    def __init__(self, label: str, reason: str, detail: str = "") -> None:
        self.label = label
        self.reason = reason
        super().__init__(f"{label}: {reason}" + (f" ({detail})" if detail else ""))


def failure_reason(message: str) -> str:
    """The short reason in a decode failure's message (``other`` when none matches)."""
    return next((reason for reason in REASONS if f": {reason}" in message), "other")


def max_pixels() -> int:
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(f"{MAX_PIXELS_ENV}={text!r}: expected a pixel count") from None
    if value < 1:
        raise DataError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive pixel count")
    return value


def set_max_pixels(limit: int | None) -> None:
    """Raise (or lower) the decompression-bomb limit for this process and the decoding workers
    it forks. ``None`` restores PIL's default."""
    if limit is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
    else:
        if int(limit) < 1:
            raise DataError(f"max pixels: expected a positive count, got {limit!r}")
        os.environ[MAX_PIXELS_ENV] = str(int(limit))


def _limit(value: int | None) -> int:
    return max_pixels() if value is None else value


def _check_size(image: Image.Image, label: str, limit: int) -> None:
    width, height = image.size
    if width * height > limit:
        raise ImageDecodeError(label, "too many pixels",
                               f"{width}×{height} = {width * height / 1e6:.0f} MP declared, "
                               f"limit {limit / 1e6:.0f} MP; raise {MAX_PIXELS_ENV} on purpose")
    if width < 1 or height < 1:
        raise ImageDecodeError(label, "cannot decode", f"empty image {width}×{height}")


def _int_to_uint8(array: np.ndarray, full_scale: float) -> np.ndarray:
    return np.clip(np.rint(array.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(
        np.uint8)


def _array_rgb(array: np.ndarray) -> Image.Image:
    """An H×W or H×W×C (C in 1, 2, 3, 4) array of any numeric dtype → 8-bit RGB.

    uint8 as is; uint16 on 0…65535; other integers as 0…255 when they fit, else 16-bit; float in
    [0, 1] (pyiqa/torchvision's convention), or in [0, 255] when larger values occur; bool as
    black/white. Alpha is dropped (as PIL's ``convert("RGB")`` does)."""
    if array.ndim == 3 and array.shape[-1] in (1, 2):
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if 0 in array.shape:
        raise DataError(f"empty image array (shape {array.shape})")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise DataError(f"expected an H×W or H×W×3 image array, got shape {array.shape}")
    if array.dtype == np.bool_:
        out = array.astype(np.uint8) * 255
    elif array.dtype == np.uint8:
        out = array
    elif array.dtype == np.uint16:
        out = _int_to_uint8(array, 65535.0)
    elif np.issubdtype(array.dtype, np.integer):  # e.g. a list of ints: 0…255, else 16-bit
        top = int(array.max()) if array.size else 0
        scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else float(top)
        out = _int_to_uint8(np.maximum(array, 0), scale)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise DataError(f"{bad} pixel value(s) are NaN or infinite")
        low, high = (float(values.min()), float(values.max())) if values.size else (0, 0)
        if low < -1e-3 or high > 255.001:
            raise DataError(f"a float image must hold values in [0, 1] or [0, 255] (got "
                            f"{low:.4g} to {high:.4g})")
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        out = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    else:
        raise DataError(f"unsupported image array dtype {array.dtype}")
    image = Image.fromarray(np.ascontiguousarray(out))
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says: a new image when it says to turn it, the
    image itself otherwise (``ImageOps.exif_transpose`` would copy every image, a full
    12-MP copy per photo)."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if orientation in range(2, 9):
            return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block: keep the pixels as stored
        pass
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image → 8-bit RGB, upright: EXIF orientation applied, 16-bit and 32-bit integer
    modes scaled (not clipped), float modes read as [0, 1] or [0, 255]."""
    source_format = image.format
    image = _upright(image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16"):
        return _array_rgb(np.asarray(image).astype(np.uint16))
    if mode == "I":
        array = np.asarray(image)
        # PNG/TIFF 16-bit greyscale opens as "I": values span 0…65535, not 0…255
        sixteen_bit = source_format == "PNG" or (array.size and array.max() > 255)
        top = 65535.0 if sixteen_bit else 255.0
        return _array_rgb(_int_to_uint8(np.maximum(array, 0), top))
    if mode == "F":
        return _array_rgb(np.asarray(image, dtype=np.float32))
    if mode in ("La", "RGBa"):
        image = image.convert("LA" if mode == "La" else "RGBA")
    if mode in ("P", "PA") and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode in ("LAB", "HSV"):
        image = image.convert("RGB") if mode == "HSV" else _lab_to_rgb(image)
        return image
    return image.convert("RGB")


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                        ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(image, transform) or image  # None only when in place


def decode_side(sizes: Sequence[int]) -> int:
    """The side a JPEG is decoded at least at, for a model reading ``sizes``: ``DECODE_MARGIN``
    × the largest (1024 px for the 224+512 pyramid, 448 for a 224-px model)."""
    return DECODE_MARGIN * max(sizes)


def _open_image(source: Any) -> Image.Image:
    try:
        return Image.open(source, formats=_COMMON_FORMATS)
    except Image.UnidentifiedImageError:
        source.seek(0)
        return Image.open(source, formats=_accepted_formats())


def _decode(source: Any, label: str, limit: int | None,
            draft_side: int | None = None) -> Image.Image:
    """``draft_side``: a JPEG at least twice that size is decoded at the smallest DCT scale
    (1/2, 1/4 or 1/8, PIL's ``draft``) that keeps both its sides ≥ ``draft_side``."""
    limit = max_pixels() if limit is None else limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, palette transparency
            if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
                Image.MAX_IMAGE_PIXELS = limit  # raised on purpose: PIL must not refuse first
            with _open_image(source) as image:
                _check_size(image, label, limit)
                if draft_side and image.format in _SCALABLE_FORMATS:
                    image.draft("RGB", (draft_side, draft_side))
                image.load()
                return to_rgb(image)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(label, "too many pixels", str(error)) from None
    except PermissionError:
        raise ImageDecodeError(label, "permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(label, "not an image", _unaccepted(source)) from None
    except Exception as error:  # noqa: BLE001 - decoders raise anything on hostile files
        detail = _MEMORY_REPR.sub("the data", str(error)) or type(error).__name__
        raise ImageDecodeError(label, "cannot decode", detail[:200]) from None


def _accepted_formats() -> tuple[str, ...]:
    """The accepted formats this PIL build can open (AVIF, for one, is optional)."""
    Image.init()
    return tuple(name for name in ACCEPTED_FORMATS if name in Image.OPEN)


def _unaccepted(source: Any) -> str:
    """Why PIL found no accepted format: a named document type, or the general reason."""
    try:
        source.seek(0)
        head = source.read(8)
    except Exception:  # noqa: BLE001 - an unreadable stream: the general reason will do
        head = b""
    for magic, kind in _DOCUMENT_MAGIC:
        if head.lstrip(b"\x00\t\r\n ").startswith(magic):
            return f"{kind} is not an accepted image format"
    return "unknown or unsupported format (accepted: JPEG, PNG, WebP, BMP, TIFF, GIF, …)"


def _open_file(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise ImageDecodeError(str(path), "not found") from None
    except IsADirectoryError:
        raise ImageDecodeError(str(path), "is a folder") from None
    except PermissionError:
        raise ImageDecodeError(str(path), "permission denied") from None
    except OSError as error:
        raise ImageDecodeError(str(path), "cannot decode", error.strerror or str(error)) from None


def open_rgb(path: str | Path, max_pixels: int | None = None,
             draft_side: int | None = None) -> Image.Image:
    """An image file as upright 8-bit RGB; ``ImageDecodeError`` names the file and why not.
    Decoded whole unless ``draft_side`` is given (the entry points give ``decode_side`` of the
    model's sizes: ``load_pixels``)."""
    path = Path(path)
    with _open_file(path) as handle:
        return _decode(handle, str(path), max_pixels, draft_side)


def decode_bytes_rgb(data: bytes, label: str = "<upload>", max_pixels: int | None = None,
                     draft_side: int | None = None) -> Image.Image:
    if not data:
        raise ImageDecodeError(label, "not an image", "empty")
    return _decode(io.BytesIO(data), label, max_pixels, draft_side)


def image_from_any(image: Any, label: str = "<image>", max_pixels: int | None = None,
                   draft_side: int | None = None) -> Image.Image:
    """A path, bytes, PIL image, NumPy array, torch tensor or nested list → upright RGB: the one
    conversion ``create_metric``, ``Scorer`` and the service use. ``draft_side`` applies to
    files and bytes (encoded JPEGs); a PIL image or array is taken as the pixels it holds.

    Arrays: H×W, H×W×C or C×H×W (C = 1, 3 or 4 and the last axis not); see ``_array_rgb``
    for value ranges (float in [0, 1] like pyiqa/torchvision, uint16 on 0…65535, other
    integers on 0…255 when they fit). NaN, infinite or empty inputs are a ``DataError``."""
    if isinstance(image, (str, Path)):
        return open_rgb(image, max_pixels, draft_side)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes_rgb(bytes(image), label, max_pixels, draft_side)
    if isinstance(image, Image.Image):
        _check_size(image, label, _limit(max_pixels))
        try:
            return to_rgb(image)
        except ValueError as error:
            raise DataError(f"{label}: {error}") from None
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, without importing
        image = image.detach().cpu().numpy()
    try:
        array = np.asarray(image)
    except (ValueError, TypeError) as error:
        raise DataError(f"{label}: not an image ({error})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                      or array.dtype == np.bool_):
        raise DataError(f"{label}: not an image (a {type(image).__name__} of {array.dtype})")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    try:
        return _array_rgb(array)
    except ValueError as error:
        raise DataError(f"{label}: {error}") from None


def _resized(image: Image.Image, size: int) -> Image.Image:
    """The whole image as size×size (PIL's antialiased bilinear filter): the one resize."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BILINEAR)


def to_model_input(image: Image.Image, size: int) -> np.ndarray:
    """Resize the whole image to size×size and normalise: a CHW float32 array."""
    image = _resized(image, size)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def to_pixels(image: Image.Image, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """The whole image resized to each size as uint8 HWC arrays (normalisation is left to the
    network: the fast scoring graphs read uint8 pixels)."""
    return tuple(np.asarray(_resized(image, s)) for s in sizes)


def load_pixels(path: str | Path, sizes: Sequence[int],
                max_pixels: int | None = None) -> tuple[np.ndarray, ...]:
    """A file as the model reads it: decoded for ``sizes`` (``decode_side``), resized to each
    size (uint8 HWC)."""
    return to_pixels(open_rgb(path, max_pixels, decode_side(sizes)), sizes)


def load_model_inputs(path: str | Path, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """A file as the PyTorch network reads it: decoded as ``load_pixels`` decodes it, then one
    normalised CHW float32 array per size."""
    return to_model_inputs(open_rgb(path, draft_side=decode_side(sizes)), sizes)


def load_model_input(path: str | Path, size: int) -> np.ndarray:
    return load_model_inputs(path, (size,))[0]


def as_sizes(size: int | Sequence[int]) -> tuple[int, ...]:
    """One input size or an image pyramid of several, as a tuple of distinct positive sizes."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        sizes: tuple[int, ...] = (int(size),)
    elif isinstance(size, (list, tuple)) and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        sizes = tuple(int(s) for s in size)
    else:
        raise ConfigError(f"expected a size or a list of sizes, got {size!r}")
    if not sizes or any(s < 32 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ConfigError(f"expected one size ≥ 32 or a list of distinct ones, got {size!r}")
    return sizes


def to_model_inputs(image: Image.Image, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """The whole image at each pyramid size, each resized from the original (never from a
    smaller level, so fine detail survives at the largest size)."""
    return tuple(to_model_input(image, size) for size in sizes)


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (first 32 hex digits): the same image under another name
    or folder shares its stored judgments."""
    path = Path(path)
    digest = hashlib.sha256()
    with _open_file(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]
