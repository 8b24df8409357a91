"""What ``leaf serve`` shows a person: a page at ``/`` to drop images on and see their scores on
the model's scale, and ``/docs`` (Swagger UI) served from the ``swagger-ui-bundle-v2`` package,
so both work without internet; the OpenAPI schema gets ``POST /score``'s request body."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

DOCS_ASSETS = "/docs-assets"


class ScoreRequest(BaseModel):
    """JSON alternative to a multipart upload."""

    images: list[str] = Field(..., description="images as base64 strings (JPEG, PNG, …)",
                              min_length=1)


class ScoreResponse(BaseModel):
    names: list[str] = Field(..., description="file names (multipart) or images[i] (JSON)")
    scores: list[float] = Field(..., description="scores on the model's MOS scale, in order")


def page_html() -> str:
    return resources.files("leafiqa.serve").joinpath("static/index.html").read_text("utf-8")


def swagger_assets() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def score_request_body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["files"],
                "properties": {"files": {"type": "array", "description": "image files",
                                         "items": {"type": "string", "format": "binary"}}},
            }},
            "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}},
        },
    }


def typed_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the body ``POST /score`` reads from the raw request."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                         description=app.description)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ScoreRequest, ScoreResponse):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}")
    operation = schema.get("paths", {}).get("/score", {}).get("post")
    if operation is not None:
        operation["requestBody"] = score_request_body()
        operation.setdefault("responses", {})["200"] = {
            "description": "one score per image",
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ScoreResponse"}}},
        }
    app.openapi_schema = schema
    return schema


def install_page(app: FastAPI) -> None:
    """Register ``/``, ``/docs`` (with local assets) and the typed schema on a service app
    created with ``docs_url=None``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page_html())

    assets = swagger_assets()
    if assets is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse("<p>Swagger UI needs the <code>swagger-ui-bundle-v2</code> "
                                "package (<code>pip install 'leaf-iqa[serve]'</code>); the "
                                "schema is at <a href='/openapi.json'>/openapi.json</a>.</p>",
                                status_code=503)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")

    app.openapi = lambda: typed_openapi(app)  # type: ignore[method-assign]
