"""The service decodes uploads through the same format allowlist as files: an EPS upload is
that file's clear error (415), never handed to Ghostscript."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import EpsImagePlugin

from tests.data.test_format_allowlist import EPS


def no_ghostscript(*_: object, **__: object) -> None:
    raise AssertionError("Ghostscript was reached")


def test_the_service_refuses_an_eps_upload(model_file: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    from fastapi.testclient import TestClient

    from leafiqa.serve.service import create_app

    with TestClient(create_app(model_file, runtime="torch")) as client:
        response = client.post("/score", files=[("files", ("x.eps", EPS, "image/x-eps"))])
    assert response.status_code == 415
    assert "EPS is not an accepted image format" in response.json()["results"][0]["error"]
