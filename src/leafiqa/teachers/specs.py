"""Build a teacher from a short spec string (CLI flags and config files use these)."""

from __future__ import annotations

import os
from pathlib import Path

from leafiqa.errors import ConfigError
from leafiqa.teachers.protocol import Teacher

SPECS = """\
cues                         offline classical NR cues (BRISQUE, sharpness, exposure); no download
qbench:PATH.json             a recorded Q-Bench judgment file (two-level good/poor logits)
jsonl:PATH.jsonl             LEAF's own recorded judgments (JSONL export)
openai                       an OpenAI-compatible server (--url or LEAF_TEACHER_URL,
                             --model or LEAF_TEACHER_MODEL); --url A --url B … spreads the
                             requests over several servers (--concurrency per server)
transformers:MODEL           a local transformers VLM (hub id or path; needs leaf-iqa[transformers])
vllm:MODEL                   a vLLM engine in-process (GPU nodes of `leaf teach --engine ray`)
"""


def make_teacher(spec: str, **options: object) -> Teacher:
    kind, _, argument = spec.partition(":")
    if kind == "cues":
        from leafiqa.teachers.offline import CueTeacher

        return CueTeacher()
    if kind == "qbench":
        from leafiqa.teachers.recorded import QBenchRecordedTeacher

        return QBenchRecordedTeacher(Path(argument))
    if kind == "jsonl":
        from leafiqa.teachers.recorded import JsonlRecordedTeacher

        return JsonlRecordedTeacher(Path(argument))
    if kind == "openai":
        from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings

        urls = list(options.pop("urls", None) or [])  # type: ignore[call-overload]
        if len(urls) > 1:
            from leafiqa.teachers.endpoints import pooled_teacher

            return pooled_teacher(urls, **options)  # type: ignore[arg-type]
        if urls:
            options["url"] = urls[0]

        settings = TeacherSettings.from_env(**options)  # type: ignore[arg-type]
        return OpenAITeacher(settings)
    if kind == "transformers":
        from leafiqa.teachers.transformers_vlm import TransformersTeacher

        model = argument or os.environ.get("LEAF_TEACHER_MODEL", "")
        return TransformersTeacher(model, **options)  # type: ignore[arg-type]
    if kind == "vllm":
        from leafiqa.teachers.vllm import VLLMTeacher

        return VLLMTeacher(argument or os.environ.get("LEAF_TEACHER_MODEL", ""),
                           **options)  # type: ignore[arg-type]
    raise ConfigError(f"unknown teacher '{spec}'. Teachers:\n{SPECS}")


def teacher_options(spec: str, *, urls: list[str] | None = None, model: str | None = None,
                    concurrency: int | None = None, timeout: float | None = None,
                    engine_args: dict[str, object] | None = None) -> dict[str, object]:
    """The options ``make_teacher(spec, **options)`` takes from a command's flags: the server's
    for ``openai`` (the ones given), the vLLM engine's for ``vllm:MODEL``; none for the
    others, which take none."""
    if spec.startswith("vllm"):
        return dict(engine_args or {})
    if engine_args:
        raise ConfigError(f"--vllm-arg is for a vllm:MODEL teacher, not '{spec}'")
    if not spec.startswith("openai"):
        return {}
    given = {"urls": urls or None, "model": model, "concurrency": concurrency,
             "timeout": timeout}
    return {key: value for key, value in given.items() if value is not None}
