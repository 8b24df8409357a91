"""``leaf serve``: the HTTP scoring service of a model (``serve.service.create_app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from leafiqa.cli.options import ModelArgument, Runtime, RuntimeOption


def serve(
    model_path: ModelArgument,
    host: Annotated[str, typer.Option(
        help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 8000,
    runtime: RuntimeOption = Runtime.auto,
    max_upload_mb: Annotated[float, typer.Option(help="largest request body, in MB")] = 20.0,
    max_batch: Annotated[int, typer.Option(help="most images in one POST /score")] = 16,
    max_pixels: Annotated[int | None, typer.Option(
        help="decompression-bomb limit per image (default: PIL's, about 89 MP)")] = None,
    read_timeout: Annotated[float, typer.Option(
        help="seconds to receive a request body")] = 30.0,
    header_timeout: Annotated[float, typer.Option(
        help="seconds for a connection to send its request's headers (then 408)")] = 10.0,
    api_key_env: Annotated[str, typer.Option(
        help="require this variable's value as the bearer token when it is set"
    )] = "LEAF_SERVE_API_KEY",
) -> None:
    """An HTTP scoring service: a page to drop images on at /, POST /score, GET /health,
    GET /model, the API's docs at /docs (works offline)."""
    import uvicorn

    from leafiqa.serve.service import create_app, server_config

    service = create_app(model_path, runtime=runtime.value,
                         max_upload_bytes=int(max_upload_mb * 2**20), max_batch=max_batch,
                         max_pixels=max_pixels, read_timeout=read_timeout,
                         api_key_env=api_key_env)
    uvicorn.Server(server_config(service, host, port, header_timeout=header_timeout)).run()
