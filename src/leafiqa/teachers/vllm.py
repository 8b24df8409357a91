"""A vLLM engine as the teacher, for GPU actors of ``leaf teach --engine ray``
(``--teacher vllm:MODEL --gpus-per-actor 1``). Same prompts and the same first-token
log-probability reading as the OpenAI-compatible teacher, without an HTTP server in between.

Never run here against a real vLLM (no GPU): tests/teachers/test_vllm.py runs it against a
stand-in of vLLM's offline chat API (tests/fakes/vllm) that answers as the mock MLLM server does.
The engine is built lazily, on the first judgment, so the driver can construct the teacher for
its id without loading the model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from leafiqa.data.manifest import ImageItem
from leafiqa.errors import ConfigError
from leafiqa.teachers.openai import distribution_from_logprobs, image_data_url
from leafiqa.teachers.prompts import DEFAULT_PROMPTS
from leafiqa.teachers.protocol import (
    JudgmentFailure,
    PairJob,
    PairJudgment,
    PointJob,
    PointJudgment,
    Teacher,
    TeacherError,
    make_point_judgment,
    pair_judgment_from_orders,
)


class VLLMTeacher(Teacher):
    supports_pairs = True

    def __init__(self, model: str, max_image_side: int = 1024, top_logprobs: int = 20,
                 **engine_options: object) -> None:
        if not model:
            raise ConfigError("vllm teacher: give the model, e.g. vllm:Qwen/Qwen2-VL-7B-Instruct")
        self.model = model
        self.teacher_id = f"vllm:{model}"
        self.prompts = DEFAULT_PROMPTS
        self.prompt_version = self.prompts.version
        self.levels = self.prompts.levels
        self.max_image_side = max_image_side
        self.top_logprobs = top_logprobs
        self.engine_options = engine_options
        self._llm = None

    def _engine(self):  # noqa: ANN202
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError:
                raise TeacherError("vllm is not installed on this worker (pip install vllm on "
                                   "the GPU nodes)") from None
            self._llm = LLM(model=self.model, **self.engine_options)
        return self._llm

    def _conversation(self, prompt: str, images: Sequence[Path]) -> list[dict]:
        content: list[dict] = [{"type": "text", "text": prompt}]
        content += [{"type": "image_url",
                     "image_url": {"url": image_data_url(p, self.max_image_side)}}
                    for p in images]
        return [{"role": "user", "content": content}]

    def _distributions(self, prompt: str, image_lists: Sequence[Sequence[Path]],
                       words: Sequence[str]) -> list:
        """One distribution over ``words`` (or a TeacherError) per conversation, in one
        batched generate call."""
        conversations: list[list[dict] | None] = []
        errors: dict[int, TeacherError] = {}
        for index, images in enumerate(image_lists):
            try:
                conversations.append(self._conversation(prompt, images))
            except TeacherError as error:
                errors[index] = error
                conversations.append(None)
        runnable = [c for c in conversations if c is not None]
        outputs = iter(self._chat(runnable) if runnable else [])
        results: list = []
        for index, conversation in enumerate(conversations):
            if conversation is None:
                results.append(errors[index])
                continue
            positions = next(outputs).outputs[0].logprobs or []
            distribution = None
            for position in positions[:3]:
                top = [{"token": lp.decoded_token, "logprob": lp.logprob}
                       for lp in position.values()]
                distribution = distribution_from_logprobs(top, words)
                if distribution is not None:
                    break
            results.append(distribution if distribution is not None else
                           TeacherError("no level word among the first tokens' log-probs"))
        return results

    def _chat(self, conversations: list[list[dict]]) -> list:
        engine = self._engine()  # first: without vLLM, its clear error
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=3, logprobs=self.top_logprobs)
        return engine.chat(conversations, params, use_tqdm=False)

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        (result,) = self._distributions(self.prompts.point, [[item.path]], self.levels)
        if isinstance(result, TeacherError):
            raise result
        return result.tolist(), "logprobs"

    def judge_points(self, jobs: Sequence[PointJob]) -> Iterator[PointJudgment | JudgmentFailure]:
        results = self._distributions(self.prompts.point, [[j.item.path] for j in jobs],
                                      self.levels)
        for job, result in zip(jobs, results, strict=True):
            try:
                if isinstance(result, TeacherError):
                    raise result
                yield make_point_judgment(image_key=job.key, teacher_id=self.teacher_id,
                                          prompt_version=self.prompt_version, levels=self.levels,
                                          probs=result, method="logprobs",
                                          image_name=job.item.name)
            except TeacherError as error:
                yield JudgmentFailure("point", (job.key,), self.teacher_id, self.prompt_version,
                                      f"{job.item.path}: {error}")

    def judge_pairs(self, jobs: Sequence[PairJob]) -> Iterator[PairJudgment | JudgmentFailure]:
        words = self.prompts.pair_answers
        orders = [[j.a.path, j.b.path] for j in jobs] + [[j.b.path, j.a.path] for j in jobs]
        results = self._distributions(self.prompts.pair, orders, words)
        for job, ab, ba in zip(jobs, results[: len(jobs)], results[len(jobs):], strict=True):
            failed = next((r for r in (ab, ba) if isinstance(r, TeacherError)), None)
            if failed is not None:
                yield JudgmentFailure("pair", (job.key_a, job.key_b), self.teacher_id,
                                      self.prompt_version,
                                      f"{job.a.name} vs {job.b.name}: {failed}")
            else:
                yield pair_judgment_from_orders(self, job, float(ab[0]), float(ba[0]),
                                                "logprobs", "logprobs")

    def close(self) -> None:
        self._llm = None
