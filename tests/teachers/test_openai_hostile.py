"""Teacher answers of the wrong shape, echoed secrets and risky key settings (issue 13,
items 4 and 6), against an in-process transport that answers whatever the test says."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leafiqa.data import read_folder
from leafiqa.errors import ConfigError
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings, distribution_from_logprobs

LEVELS = ("excellent", "good", "fair", "poor", "bad")


def answering(payload: object, status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return httpx.Response(status, content=text.encode(),
                              headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


def teach_one(folder: Path, transport: httpx.BaseTransport, **options: object):  # noqa: ANN201
    teacher = OpenAITeacher(TeacherSettings(url="http://127.0.0.1:9/v1", model="m",
                                            max_retries=0, fallback_samples=1, **options),
                            transport=transport)
    manifest = read_folder(folder)
    manifest = manifest.subset(manifest.items[:1])
    store = JudgmentStore()
    report = teach(teacher, manifest, store, progress=False)
    return report, store


def logprob_answer(top: object, content: object = "good") -> dict:
    return {"choices": [{"message": {"content": content},
                         "logprobs": {"content": [{"token": "x", "top_logprobs": top}]}}]}


MALFORMED = [
    {"choices": [None]},
    {"choices": None},
    {"choices": "abc"},
    [1, 2, 3],
    "not json at all",
    {"choices": [{"message": None, "logprobs": "yes"}]},
    {"choices": [{"message": {"content": 7}, "logprobs": {"content": [None, 3]}}]},
    logprob_answer([{"token": "good"}], content=None),
    logprob_answer([{"token": "good", "logprob": "abc"}], content=None),
    logprob_answer([{"token": None, "logprob": float("nan")}], content=None),
]


@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_answers_are_stored_failures(image_folder: Path, payload: object) -> None:
    report, store = teach_one(image_folder, answering(payload))
    assert report.points_failed == 1 and report.points_new == 0
    assert len(store.failures()) == 1


def test_odd_but_usable_shapes_still_give_judgments(image_folder: Path) -> None:
    as_object = logprob_answer({"good": -0.1, "poor": -2.5})
    report, store = teach_one(image_folder, answering(as_object))
    (point,) = store.points("openai:m").values()
    assert report.points_new == 1 and point.method == "logprobs"
    assert point.probs[1] > 0.85
    missing = logprob_answer([{"token": "good"}, {"token": "bad", "logprob": -9}], "Good.")
    report, store = teach_one(image_folder, answering(missing))
    assert report.points_new == 1
    assert distribution_from_logprobs([{"token": "fair", "logprob": "-0.5"}], LEVELS)[2] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["choices", "message", "content", "logprobs",
                                       "top_logprobs", "token", "logprob", "good"]),
                      children, max_size=4),
    max_leaves=12)


@given(payload=json_values)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_answer_is_a_judgment_or_a_stored_failure(image_folder: Path,
                                                           payload: object) -> None:
    report, store = teach_one(image_folder, answering({"choices": [payload]}))
    assert report.points_new + report.points_failed == 1


def test_echoed_api_key_is_redacted_in_store_and_log(image_folder: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    secret = "tok-9f8e7d6c5b4a39281706"
    monkeypatch.setenv("LEAF_TEACHER_API_KEY", secret)
    echo = {"error": {"message": f"key {secret} is not allowed", "auth": f"Bearer {secret}"}}
    with caplog.at_level(logging.WARNING):
        report, store = teach_one(image_folder, answering(echo, status=401))
    assert report.points_failed == 1
    stored = json.dumps(store.table("point_judgments")[1])
    assert secret not in stored and "[redacted]" in stored
    assert secret not in caplog.text and all(secret not in e for e in report.errors)


@pytest.mark.parametrize("name", ["HOME", "PATH", "AWS_REGION", "lower_key", ""])
def test_api_key_env_must_name_a_credential(name: str) -> None:
    with pytest.raises(ConfigError, match="api_key_env"):
        TeacherSettings(api_key_env=name)


def test_no_key_over_plain_http_to_another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cret-value-123")
    for url in ("http://10.0.0.5:8000/v1", "http://example.org/v1"):
        with pytest.raises(ConfigError, match="plain http"):
            OpenAITeacher(TeacherSettings(url=url, api_key_env="MY_SERVICE_TOKEN"))
    for url in ("https://example.org/v1", "http://127.0.0.1:8000/v1", "http://localhost/v1",
                "http://[::1]:8000/v1"):
        OpenAITeacher(TeacherSettings(url=url, api_key_env="MY_SERVICE_TOKEN"))
    monkeypatch.delenv("MY_SERVICE_TOKEN")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAITeacher(TeacherSettings(url="http://10.0.0.5/v1", api_key_env="MY_SERVICE_TOKEN"))
