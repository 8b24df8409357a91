"""A stand-in for the few parts of vLLM's offline API that ``VLLMTeacher`` uses (``LLM.chat``,
``SamplingParams``, ``RequestOutput.outputs[0].logprobs`` as a list of ``{token_id: Logprob}``
per generated position), for tests on machines without a GPU or vLLM. Put ``tests/fakes`` on the
path to import it as ``vllm``.

It answers as the project's mock MLLM server does (the same function of the images), so the
vLLM teacher and the OpenAI teacher against the mock server must give the same judgments. It
checks what it is given the way vLLM's chat API would need it (conversations of role/content
messages, images as data URLs) and fails loudly otherwise. Every engine it builds appends
``pid model options-as-JSON`` to the file named by ``FAKE_VLLM_LOG`` (when set), so tests can
count engines and see where they ran."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from leafiqa.testing.mock_teacher import decode_data_url, mock_answer


@dataclass
class SamplingParams:
    temperature: float = 1.0
    max_tokens: int | None = 16
    logprobs: int | None = None


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str = "stop"


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[CompletionOutput] = field(default_factory=list)


def _images(conversation: list[dict]) -> list:
    if not isinstance(conversation, list) or not all(isinstance(m, dict) for m in conversation):
        raise TypeError(f"a conversation is a list of messages, got {type(conversation)}")
    images = []
    for message in conversation:
        if message.get("role") not in {"system", "user", "assistant"}:
            raise ValueError(f"message without a valid role: {message.get('role')!r}")
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image_url":
                images.append(decode_data_url(part["image_url"]["url"]))
            elif part["type"] != "text":
                raise ValueError(f"unknown content part {part['type']!r}")
    if not images:
        raise ValueError("no image in the conversation")
    return images


class LLM:
    def __init__(self, model: str, **engine_options: object) -> None:
        self.model = model
        self.engine_options = engine_options
        self.calls = 0
        log = os.environ.get("FAKE_VLLM_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()} {model} {json.dumps(engine_options)}\n")

    def chat(self, messages: list, sampling_params: SamplingParams | None = None,
             use_tqdm: bool = True) -> list[RequestOutput]:
        self.calls += 1
        params = sampling_params or SamplingParams()
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        outputs = []
        for number, conversation in enumerate(conversations):
            words, probs = mock_answer(_images(conversation))
            ranked = sorted(zip(words, probs, strict=True), key=lambda wp: -wp[1])
            best = ranked[0][0]
            logprobs = None
            if params.logprobs is not None:
                # the first generated token: the answer words, some with the leading space
                # of a BPE vocabulary, some capitalised; the next position is punctuation
                first = {100 + rank: Logprob(math.log(max(float(p), 1e-12)), rank,
                                             (" " + word) if rank % 2 else word.capitalize())
                         for rank, (word, p) in enumerate(ranked, start=1)}
                logprobs = [first, {7: Logprob(-0.01, 1, ".")}][: params.max_tokens or 2]
            outputs.append(RequestOutput(str(number), [CompletionOutput(
                0, best.capitalize() + ".", [100, 7], logprobs)]))
        return outputs
