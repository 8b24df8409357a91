"""Decoding accepts real image formats only: PostScript/EPS/PDF never reach PIL's Ghostscript
loader, exotic PIL formats are refused, and the reason names the file and what it is."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from leafiqa.data.images import ImageDecodeError, decode_bytes_rgb, image_from_any, open_rgb

EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
       b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(autouse=True)
def no_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("Ghostscript was reached")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse)


@pytest.mark.parametrize(("data", "kind"), [(EPS, "EPS"), (b"\xc5\xd0\xd3\xc6" + EPS, "EPS"),
                                            (PDF, "PDF")])
def test_documents_are_refused_with_a_clear_reason(tmp_path: Path, data: bytes,
                                                   kind: str) -> None:
    path = tmp_path / "drawing.eps"
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError) as caught:
        open_rgb(path)
    assert caught.value.reason == "not an image"
    assert str(caught.value).startswith(f"{path}: not an image")
    assert f"{kind} is not an accepted image format" in str(caught.value)
    with pytest.raises(ImageDecodeError, match="not an accepted image format"):
        decode_bytes_rgb(data, "upload.eps")


def test_exotic_pil_formats_are_refused(tmp_path: Path) -> None:
    for name, extension in (("PCX", "pcx"), ("SGI", "sgi")):
        path = tmp_path / f"image.{extension}"
        Image.new("RGB", (8, 8), (10, 20, 30)).save(path, format=name)
        with pytest.raises(ImageDecodeError, match="not an image.*unknown or unsupported"):
            open_rgb(path)


@pytest.mark.parametrize("format_", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM"])
def test_real_image_formats_are_accepted(format_: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, format=format_)
    assert image_from_any(buffer.getvalue()).size == (8, 8)
