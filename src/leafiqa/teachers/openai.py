"""An MLLM teacher behind any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama,
llama.cpp's server, LM Studio, hosted APIs).

Point-wise: the level words' probabilities from the answer's first-token ``top_logprobs``
(tokens matched with or without a leading space, any case, and as a prefix of a level word when
a word is split into several tokens). Without log-probabilities: ``n`` sampled answers
(method ``sampled``), else the one answer parsed (``parsed``), each with lower reliability.
Pair-wise: the same on the words "first"/"second", asked in both orders.

Requests run concurrently (async httpx, bounded), with a per-request timeout and retries with
exponential backoff and jitter on timeouts, connection errors, 429 (honouring Retry-After), 5xx
and malformed JSON. The API key comes from the environment and is never stored or logged."""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import io
import math
import os
import queue
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from leafiqa.data.images import ImageDecodeError, decode_bytes_rgb
from leafiqa.data.manifest import ImageItem
from leafiqa.errors import ConfigError
from leafiqa.redact import (
    looks_like_key_name,
    redact,
    redact_library_logs,
    redact_url,
    register_url_credentials,
)
from leafiqa.teachers.prompts import DEFAULT_PROMPTS, PromptSet, match_word
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

redact_library_logs()  # httpx logs every request's URL, with any credentials in it

ORIENTATION_TAG = 0x0112  # EXIF orientation: images not stored upright are sent re-encoded
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class TeacherSettings:
    url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    top_logprobs: int = 20
    fallback_samples: int = 5
    max_image_side: int = 1024
    prompts: PromptSet = field(default_factory=lambda: DEFAULT_PROMPTS)
    api_key_env: str = "LEAF_TEACHER_API_KEY"

    @classmethod
    def from_env(cls, **overrides: Any) -> TeacherSettings:
        """Flags override the environment (LEAF_TEACHER_URL, LEAF_TEACHER_MODEL), which
        overrides the defaults."""
        settings = cls()
        if os.environ.get("LEAF_TEACHER_URL"):
            settings.url = os.environ["LEAF_TEACHER_URL"]
        if os.environ.get("LEAF_TEACHER_MODEL"):
            settings.model = os.environ["LEAF_TEACHER_MODEL"]
        prompt_overrides = {k: overrides.pop(k) for k in ("point_prompt", "pair_prompt",
                                                          "prompt_version") if k in overrides}
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        if prompt_overrides:
            if "prompt_version" not in prompt_overrides:
                raise ConfigError("a custom prompt needs its own prompt_version")
            settings.prompts = replace(
                settings.prompts,
                version=prompt_overrides["prompt_version"],
                point=prompt_overrides.get("point_prompt", settings.prompts.point),
                pair=prompt_overrides.get("pair_prompt", settings.prompts.pair),
            )
        return settings

    def __post_init__(self) -> None:
        if not looks_like_key_name(str(self.api_key_env)):
            raise ConfigError(
                f"teacher api_key_env={self.api_key_env!r}: must name a credential variable "
                "(upper case, ending in _KEY, _API_KEY, _TOKEN or _SECRET); any other "
                "environment variable would be sent to the server")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or os.environ.get("OPENAI_API_KEY")

    def check_key_transport(self, urls: Sequence[str] = ()) -> None:
        """Refuse to send a credential in clear text over the network: the API key, or a
        user:password written in the URL, goes over plain http only to a loopback host (a
        local server or an SSH tunnel). Every endpoint is checked before any request."""
        for url in [self.url, *urls]:
            check_endpoint(url, self.api_key_env if self.api_key() else None)


def check_endpoint(url: str, key_env: str | None) -> None:
    """``url`` must be http(s)://host…; with a credential (``key_env`` set, or user:password in
    the URL) plain http is allowed to a loopback host only. The message never shows the
    credential."""
    register_url_credentials(url)
    shown = repr(redact_url(url))
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise ConfigError(f"--url {shown}: not a URL ({redact(str(error))})") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ConfigError(f"--url {shown}: expected http(s)://host[:port]/path")
    if parsed.scheme == "https" or is_loopback(parsed.host):
        return
    if parsed.userinfo:
        raise ConfigError(f"--url {shown}: refusing to send the credentials written in the URL "
                          "over plain http to a non-loopback host; use https (or an SSH tunnel "
                          "to 127.0.0.1)")
    if key_env:
        raise ConfigError(f"--url {shown}: refusing to send the API key from ${key_env} over "
                          "plain http to a non-loopback host; use https (or an SSH tunnel to "
                          "127.0.0.1)")


def retry_after_seconds(value: str | None, limit: float) -> float | None:
    """A server's Retry-After (seconds, or an HTTP date) clamped to [0, ``limit``]; None for a
    missing or unusable value (nan, inf, negative, garbage), so the usual backoff applies."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = max((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds(), 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, limit)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def image_data_url(path: Path, max_side: int) -> str:
    """The image as a data URL: the original bytes when the server can read them and they are
    small enough (re-encoding would change the quality being judged), else a lossless PNG."""
    try:
        data = path.read_bytes()
        image = decode_bytes_rgb(data, str(path))  # bomb limit, EXIF, 16-bit: LEAF's one path
        with Image.open(io.BytesIO(data)) as header:
            fmt = (header.format or "").upper()
            plain = (header.mode in {"RGB", "L"}
                     and header.getexif().get(ORIENTATION_TAG, 1) == 1)
    except ImageDecodeError as error:
        raise TeacherError(str(error)) from None
    except OSError as error:
        raise TeacherError(f"{path}: cannot read image ({error.strerror or error})") from None
    if fmt in {"JPEG", "PNG", "WEBP"} and plain and max(image.size) <= max_side:
        mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[fmt]
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _logprob(value: Any) -> float | None:
    """A finite log-probability ≤ 0 (tiny positive rounding allowed), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(number, 0.0) if np.isfinite(number) and number <= 1e-3 else None


def top_entries(top: Any) -> list[tuple[str, float]]:
    """(token, logprob) pairs from a ``top_logprobs`` field, tolerating the shapes servers send:
    a list of ``{"token", "logprob"}`` objects, or an object ``{token: logprob}``. Entries
    with a missing or non-numeric log-probability are skipped."""
    if isinstance(top, dict):
        items = [(token, value) for token, value in top.items()]
    elif isinstance(top, list):
        items = [(entry.get("token"), entry.get("logprob")) for entry in top
                 if isinstance(entry, dict)]
    else:
        return []
    out = []
    for token, value in items:
        logprob = _logprob(value)
        if isinstance(token, str) and logprob is not None:
            out.append((token, logprob))
    return out


def distribution_from_logprobs(top: Any, words: Sequence[str]) -> np.ndarray | None:
    mass = np.zeros(len(words))
    for token, logprob in top_entries(top):
        word = match_word(token, words)
        if word is not None:
            mass[words.index(word)] += float(np.exp(logprob))
    total = mass.sum()
    return mass / total if np.isfinite(total) and total > 1e-9 else None


def _choices(payload: Any) -> list[dict]:
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list):
        raise TeacherError(f"malformed answer: 'choices' is {type(choices).__name__}, not a list")
    return [choice for choice in choices if isinstance(choice, dict)]


def choice_text(choice: Any) -> str:
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def parse_choice(payload: Any) -> tuple[list[Any], str]:
    """The first choice of a chat-completions answer: its per-position ``top_logprobs`` fields
    (first three tokens) and its text. A malformed answer is a ``TeacherError``, never a
    KeyError/TypeError that would stop the whole run."""
    choices = _choices(payload)
    if not choices:
        raise TeacherError("malformed answer: no usable choice (got "
                           f"{redact(repr(payload.get('choices'))[:80])})")
    choice = choices[0]
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    positions = [position.get("top_logprobs") for position in content[:3]
                 if isinstance(position, dict)] if isinstance(content, list) else []
    return positions, choice_text(choice)


def sampled_texts(payload: Any) -> list[str]:
    return [choice_text(choice) for choice in _choices(payload)]


def words_in_answer(text: str, words: Sequence[str]) -> str | None:
    found = [(m.start(), w) for w in words for m in re.finditer(rf"\b{w}\b", text.lower())]
    return min(found)[1] if found else None


class OpenAITeacher(Teacher):
    """See the module docstring. ``teacher_id`` is ``openai:<model>``."""

    supports_pairs = True

    def __init__(self, settings: TeacherSettings | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings or TeacherSettings.from_env()
        pool_urls = [e.url for e in getattr(transport, "endpoints", ())]
        self.settings.check_key_transport(pool_urls)  # every endpoint, before any request
        self.teacher_id = f"openai:{self.settings.model}"
        self.prompt_version = self.settings.prompts.version
        self.levels = self.settings.prompts.levels
        self.requests_made = 0
        self._transport = transport
        self._encoded: dict[Path, str] = {}

    # -- HTTP ---------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        headers = {"Content-Type": "application/json"}
        key = self.settings.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        return httpx.AsyncClient(base_url=self.settings.url.rstrip("/"), headers=headers,
                                 timeout=self.settings.timeout, limits=limits,
                                 transport=self._transport)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            wait = retry_after_seconds(response.headers.get("retry-after"),
                                       self.settings.backoff_max)
            if wait is not None:
                return wait
        base = min(self.settings.backoff_max, self.settings.backoff_base * 2**attempt)
        return base * (0.5 + random.random())

    async def _chat(self, client: httpx.AsyncClient, body: dict) -> dict:
        last_error = "no attempt made"
        for attempt in range(self.settings.max_retries + 1):
            response = None
            try:
                self.requests_made += 1
                # a total deadline: httpx's timeout bounds each read, and a server sending a
                # byte at a time would hold the request for ever
                response = await asyncio.wait_for(client.post("/chat/completions", json=body),
                                                  self.settings.timeout)
                if response.status_code == 200:
                    payload = response.json()
                    if not isinstance(payload, dict) or not payload.get("choices"):
                        raise ValueError("no choices in the answer")
                    return payload
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUS:
                    raise TeacherError(redact(last_error, (self.settings.api_key(),)))
            except (httpx.TimeoutException, httpx.TransportError) as error:
                last_error = f"{type(error).__name__}: {error}"
            except TimeoutError:
                last_error = f"no complete answer within {self.settings.timeout:g} s"
            except ValueError as error:  # malformed JSON or a body without choices
                last_error = f"malformed answer: {error}"
            except RecursionError:  # JSON nested too deep for Python's parser
                last_error = "malformed answer: JSON nested too deep"
            if attempt < self.settings.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        raise TeacherError(redact(f"{redact_url(self.settings.url)!r}: gave up after "
                                  f"{self.settings.max_retries + 1} attempts ({last_error})",
                                  (self.settings.api_key(),)))

    def _image(self, path: Path) -> str:
        if path not in self._encoded:
            if len(self._encoded) > 256:
                self._encoded.clear()
            self._encoded[path] = image_data_url(path, self.settings.max_image_side)
        return self._encoded[path]

    def _body(self, prompt: str, images: Sequence[Path], **extra: Any) -> dict:
        content: list[dict] = [{"type": "text", "text": prompt}]
        content += [{"type": "image_url", "image_url": {"url": self._image(p)}} for p in images]
        return {"model": self.settings.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0.0, "max_tokens": 3, **extra}

    async def _word_distribution(
        self, client: httpx.AsyncClient, prompt: str, images: Sequence[Path],
        words: Sequence[str],
    ) -> tuple[np.ndarray, str]:
        """Distribution over ``words`` for the answer, and the method that produced it."""
        payload = await self._chat(client, self._body(
            prompt, images, logprobs=True, top_logprobs=self.settings.top_logprobs))
        positions, answer = parse_choice(payload)
        for top in positions:  # first token that names a word
            distribution = distribution_from_logprobs(top, words)
            if distribution is not None:
                return distribution, "logprobs"
        if self.settings.fallback_samples > 1:
            sampled = await self._chat(client, self._body(
                prompt, images, n=self.settings.fallback_samples, temperature=1.0, max_tokens=8))
            counts = np.zeros(len(words))
            for text in sampled_texts(sampled):
                word = words_in_answer(text, words)
                if word:
                    counts[words.index(word)] += 1
            if counts.sum() >= 2:
                return (counts + 0.5) / (counts + 0.5).sum(), "sampled"
        word = words_in_answer(answer, words)
        if word is None:
            raise TeacherError(f"answer not understood: {answer[:80]!r}")
        distribution = np.full(len(words), 0.4 / max(len(words) - 1, 1))
        distribution[words.index(word)] = 0.6
        return distribution, "parsed"

    # -- the protocol ---------------------------------------------------------------------------

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        async def one() -> tuple[np.ndarray, str]:
            async with self._client() as client:
                return await self._word_distribution(client, self.settings.prompts.point,
                                                     [item.path], self.levels)
        distribution, method = asyncio.run(one())
        return distribution.tolist(), method

    def first_better_prob(self, first: ImageItem, second: ImageItem) -> tuple[float, str]:
        async def one() -> tuple[np.ndarray, str]:
            async with self._client() as client:
                return await self._word_distribution(client, self.settings.prompts.pair,
                                                     [first.path, second.path],
                                                     self.settings.prompts.pair_answers)
        distribution, method = asyncio.run(one())
        return float(distribution[0]), method

    async def _point_job(self, client: httpx.AsyncClient, job: PointJob) -> PointJudgment:
        distribution, method = await self._word_distribution(
            client, self.settings.prompts.point, [job.item.path], self.levels)
        return make_point_judgment(image_key=job.key, teacher_id=self.teacher_id,
                                   prompt_version=self.prompt_version, levels=self.levels,
                                   probs=distribution, method=method, image_name=job.item.name)

    async def _pair_job(self, client: httpx.AsyncClient, job: PairJob) -> PairJudgment:
        words = self.settings.prompts.pair_answers
        (ab, method_ab), (ba, method_ba) = await asyncio.gather(
            self._word_distribution(client, self.settings.prompts.pair,
                                    [job.a.path, job.b.path], words),
            self._word_distribution(client, self.settings.prompts.pair,
                                    [job.b.path, job.a.path], words),
        )
        return pair_judgment_from_orders(self, job, float(ab[0]), float(ba[0]), method_ab,
                                         method_ba)

    def _run_concurrently(self, jobs: Sequence, work: Callable, failure: Callable) -> Iterator:
        """Run ``work(client, job)`` for all jobs with bounded concurrency in a background event
        loop; yield each result (or failure) as soon as it arrives."""
        results: queue.Queue = queue.Queue()
        done = object()

        async def main() -> None:
            semaphore = asyncio.Semaphore(self.settings.concurrency)
            async with self._client() as client:
                async def guarded(job: Any) -> None:
                    async with semaphore:
                        try:
                            results.put(await work(client, job))
                        except TeacherError as error:
                            results.put(failure(job, str(error)))
                await asyncio.gather(*(guarded(job) for job in jobs))

        def thread_main() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:  # surface crashes in the consuming thread
                results.put(error)
            finally:
                results.put(done)

        worker = threading.Thread(target=thread_main, daemon=True)
        worker.start()
        while True:
            item = results.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        worker.join()

    def judge_points(self, jobs: Sequence[PointJob]) -> Iterator[PointJudgment | JudgmentFailure]:
        return self._run_concurrently(
            jobs, self._point_job,
            lambda job, error: JudgmentFailure("point", (job.key,), self.teacher_id,
                                               self.prompt_version, f"{job.item.path}: {error}"))

    def judge_pairs(self, jobs: Sequence[PairJob]) -> Iterator[PairJudgment | JudgmentFailure]:
        return self._run_concurrently(
            jobs, self._pair_job,
            lambda job, error: JudgmentFailure("pair", (job.key_a, job.key_b), self.teacher_id,
                                               self.prompt_version,
                                               f"{job.a.name} vs {job.b.name}: {error}"))
