"""The OpenAI-compatible teacher against a real HTTP server on 127.0.0.1 whose answers depend on
the images it receives (``leafiqa.testing.mock_teacher``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from leafiqa.data import read_folder
from leafiqa.data.images import open_rgb
from leafiqa.judgments.runner import hash_manifest, teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings
from leafiqa.teachers.prompts import match_word
from leafiqa.testing.mock_teacher import (
    MockBehaviour,
    ServerThread,
    create_mock_app,
    detail_quality,
    image_detail,
)

pytest.importorskip("fastapi")


def run(folder: Path, behaviour: MockBehaviour, store: JudgmentStore, pairs: int = 2,
        **settings: object):
    with ServerThread(create_mock_app(behaviour)) as server:
        teacher = OpenAITeacher(TeacherSettings(url=server.url + "/v1", model="mock",
                                                backoff_base=0.01, **settings))
        report = teach(teacher, read_folder(folder), store, pairs_per_image=pairs,
                       progress=False)
    return teacher, report


def truth(folder: Path) -> dict[str, float]:
    manifest = read_folder(folder)
    keys = hash_manifest(manifest)
    pairs = zip(keys, manifest, strict=True)
    return {k: detail_quality(image_detail(open_rgb(i.path))) for k, i in pairs}


def test_point_and_pair_judgments_follow_the_images(image_folder: Path) -> None:
    store = JudgmentStore()
    behaviour = MockBehaviour()
    _, report = run(image_folder, behaviour, store)
    assert report.points_new == 12 and report.points_failed == 0
    points = store.points("openai:mock")
    expected = truth(image_folder)
    assert all(p.method == "logprobs" and len(p.probs) == 5 for p in points.values())
    keys = list(points)
    rho = spearmanr([points[k].score for k in keys], [expected[k] for k in keys]).statistic
    assert rho > 0.95
    pairs = store.pairs("openai:mock")
    assert len(pairs) == report.pairs_new > 0
    for pair in pairs:
        # the mock prefers the first image by +0.1: both orders asked, bias cancelled
        assert pair.p_first_ab + pair.p_first_ba > 1.0 or abs(
            expected[pair.key_a] - expected[pair.key_b]) > 0.3
        if abs(expected[pair.key_a] - expected[pair.key_b]) > 0.05:
            assert (pair.prob_a_better > 0.5) == (expected[pair.key_a] > expected[pair.key_b])
        assert pair.reliability < 1.0 and pair.source == "queried"


def test_second_run_makes_no_request(image_folder: Path) -> None:
    store = JudgmentStore()
    behaviour = MockBehaviour()
    run(image_folder, behaviour, store)
    before = behaviour.requests
    _, report = run(image_folder, behaviour, store)
    assert behaviour.requests == before
    assert report.points_new == 0 and report.points_stored_before == 12
    assert report.pairs_new == 0 and report.pairs_stored_before > 0


@pytest.mark.parametrize("fault", ["429", "500", "garbage", "no_choices"])
def test_transient_faults_are_retried(image_folder: Path, fault: str) -> None:
    store = JudgmentStore()
    behaviour = MockBehaviour(fault=fault, fault_times=2)
    _, report = run(image_folder, behaviour, store, pairs=0, max_retries=3)
    assert report.points_new == 12 and report.points_failed == 0
    assert behaviour.requests == 12 * 3


def test_timeout_is_retried(image_folder: Path) -> None:
    store = JudgmentStore()
    behaviour = MockBehaviour(fault="slow", fault_times=1, slow_seconds=1.5)
    _, report = run(image_folder, behaviour, store, pairs=0, timeout=0.5, max_retries=2,
                    concurrency=12)
    assert report.points_new == 12 and report.points_failed == 0


def test_persistent_failure_is_stored_then_resumed(image_folder: Path) -> None:
    store = JudgmentStore()
    broken = MockBehaviour(fault="500", fault_times=100)
    _, report = run(image_folder, broken, store, pairs=0, max_retries=1)
    assert report.points_failed == 12 and report.points_new == 0
    assert not store.points("openai:mock")  # a failure never becomes a score
    assert len(store.failures("openai:mock")) == 12
    healthy = MockBehaviour()
    _, report = run(image_folder, healthy, store, pairs=0)
    assert report.points_new == 12 and healthy.requests == 12
    assert not store.failures("openai:mock")


def test_without_logprobs_falls_back_to_samples(image_folder: Path) -> None:
    store = JudgmentStore()
    run(image_folder, MockBehaviour(logprobs=False), store, pairs=0)
    points = store.points("openai:mock")
    assert {p.method for p in points.values()} == {"sampled"}
    assert max(p.reliability for p in points.values()) < 0.7


def test_without_logprobs_or_samples_parses_the_answer(image_folder: Path) -> None:
    store = JudgmentStore()
    run(image_folder, MockBehaviour(logprobs=False), store, pairs=0, fallback_samples=1)
    assert {p.method for p in store.points("openai:mock").values()} == {"parsed"}


def test_split_tokens_still_match(image_folder: Path) -> None:
    store = JudgmentStore()
    run(image_folder, MockBehaviour(split_tokens=True), store, pairs=0)
    points = store.points("openai:mock")
    expected = truth(image_folder)
    keys = list(points)
    assert spearmanr([points[k].score for k in keys], [expected[k] for k in keys]).statistic > 0.95
    assert match_word(" Exc", ("excellent", "good")) == "excellent"
    assert match_word("GOOD", ("excellent", "good")) == "good"
    assert match_word("the", ("excellent", "good")) is None


def test_request_budget_stops_and_a_rerun_finishes_without_repeats(image_folder: Path) -> None:
    store = JudgmentStore()
    behaviour = MockBehaviour()
    with ServerThread(create_mock_app(behaviour)) as server:
        teacher = OpenAITeacher(TeacherSettings(url=server.url + "/v1", model="mock"))
        first = teach(teacher, read_folder(image_folder), store, max_requests=5, progress=False)
        assert first.budget_exhausted and first.points_new == 5
        second = teach(teacher, read_folder(image_folder), store, progress=False)
    assert second.points_new == 7 and second.points_stored_before == 5
    assert behaviour.successes == 12  # nothing that succeeded was asked twice


def test_api_key_is_sent_but_never_stored(image_folder: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEAF_TEACHER_API_KEY", "sk-secret-123")
    store_path = tmp_path / "j.sqlite"
    with JudgmentStore(store_path) as store:
        run(image_folder, MockBehaviour(), store, pairs=1)
    assert b"sk-secret-123" not in store_path.read_bytes()
    settings = TeacherSettings.from_env(url="http://x/v1")
    assert settings.api_key() == "sk-secret-123"
    assert "sk-secret" not in repr(settings)


def test_settings_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("LEAF_TEACHER_URL", "http://env:1/v1")
    monkeypatch.setenv("LEAF_TEACHER_MODEL", "qwen")
    assert TeacherSettings.from_env().url == "http://env:1/v1"
    assert TeacherSettings.from_env(model="flag").model == "flag"
    with pytest.raises(ValueError, match="prompt_version"):
        TeacherSettings.from_env(point_prompt="Rate it")
    custom = TeacherSettings.from_env(point_prompt="Rate it", prompt_version="mine-1")
    assert custom.prompts.version == "mine-1" and custom.prompts.point == "Rate it"
    os.environ.pop("LEAF_TEACHER_URL", None)
