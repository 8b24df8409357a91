"""``leaf teach``: a teacher's judgments of a data set, stored (``api.teach_images``)."""

from __future__ import annotations

from typing import Annotated

import typer

from leafiqa.cli.base import parse_json_object, parse_overrides, renamed
from leafiqa.cli.options import (
    ActorsOption,
    DataOption,
    Engine,
    EngineOption,
    Kind,
    KindOption,
    LimitOption,
    QuietOption,
    RayAddressOption,
    SplitOption,
    StoreOption,
    StrictOption,
)
from leafiqa.defaults import DEFAULT_SPLIT, DEFAULT_STORE
from leafiqa.errors import NothingSucceeded

TEACHER_HELP = "teacher spec: cues, qbench:FILE, jsonl:FILE, openai, transformers:MODEL, vllm:MODEL"


def teach(
    data: DataOption,
    teacher: Annotated[str, typer.Option(help=TEACHER_HELP)] = "cues",
    store: StoreOption = DEFAULT_STORE,
    kind: KindOption = Kind.auto,
    split: SplitOption = DEFAULT_SPLIT,
    limit: LimitOption = None,
    pairs_per_image: Annotated[int, typer.Option(
        help="pair-wise judgments per image (0: none)")] = 4,
    max_requests: Annotated[int | None, typer.Option(
        help="stop after this many judgments")] = None,
    url: Annotated[list[str] | None, typer.Option(
        help="OpenAI-compatible base URL (or LEAF_TEACHER_URL); repeat to spread requests over "
             "several servers")] = None,
    model: Annotated[str | None, typer.Option(
        help="model name (or LEAF_TEACHER_MODEL)")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="requests in flight (openai; per server with several --url)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per request (openai)")] = None,
    backend: Annotated[str | None, typer.Option(
        hidden=True, help="old name of --teacher")] = None,
    engine: EngineOption = Engine.local,
    ray_address: RayAddressOption = None,
    actors: ActorsOption = None,
    gpus_per_actor: Annotated[float, typer.Option(
        help="GPUs per teacher actor (ray, vllm:MODEL)")] = 0.0,
    vllm_arg: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE for the vLLM engine (vllm:MODEL), e.g. max_model_len=8192; "
             "repeatable")] = None,
    runtime_env: Annotated[str | None, typer.Option(
        help="the teacher actors' Ray runtime environment as JSON (ray), e.g. "
             "'{\"env_vars\": {…}}'")] = None,
    quiet: QuietOption = False,
    strict: StrictOption = False,
) -> None:
    """Ask a teacher for point-wise and pair-wise judgments; resumes where a run stopped."""
    from leafiqa.api import teach_images
    from leafiqa.data.inputs import read_data
    from leafiqa.teachers.specs import teacher_options

    if backend is not None:  # the option's old name, still read
        renamed("--backend", "--teacher")
    spec = backend if backend and teacher == "cues" else teacher
    options = teacher_options(spec, urls=url, model=model, concurrency=concurrency,
                              timeout=timeout,
                              engine_args=parse_overrides(vllm_arg, "--vllm-arg",
                                                          "max_model_len=8192"))
    ray = None
    if engine is Engine.ray:
        from leafiqa.distributed.ray_teach import RaySettings

        ray = RaySettings(address=ray_address, actors=actors, num_gpus=gpus_per_actor,
                          runtime_env=parse_json_object(runtime_env, "--runtime-env"))
    manifest = read_data(data, kind.value, split, limit)
    taught = teach_images(manifest, spec, store, teacher_options=options,
                          pairs_per_image=pairs_per_image, max_requests=max_requests,
                          engine=engine.value, ray=ray, progress=not quiet, strict=strict)
    report = taught.report
    typer.echo(report.summary())
    for line in taught.endpoints:
        typer.echo(f"  {line}")
    for error in report.errors[:5]:
        typer.echo(f"  failed: {error}", err=True)
    if engine is Engine.local and report.images and report.succeeded == 0 \
            and not report.budget_exhausted and not report.claimed_elsewhere:
        raise NothingSucceeded(f"no judgment succeeded for any of {report.images} images")
