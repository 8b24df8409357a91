"""The vLLM teacher's own code (conversations, batching, reading the first token's
log-probabilities, per-image failures) against ``tests/fakes/vllm``, a stand-in for vLLM's
offline chat API that answers as the mock MLLM server does. It cannot show that a real model on
a GPU behaves; it shows that LEAF asks vLLM what it asks the OpenAI-compatible server and reads
the answers the same way."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leafiqa.data import read_folder
from leafiqa.judgments.runner import hash_manifest, teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings
from leafiqa.teachers.protocol import JudgmentFailure, PointJob, PointJudgment, TeacherError
from leafiqa.teachers.specs import make_teacher
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app

FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """``import vllm`` gives the stand-in; yields the file its engines are logged to."""
    log = tmp_path / "engines.log"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    yield log
    sys.modules.pop("vllm", None)


def engines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.is_file() else []


def test_vllm_judges_as_the_openai_teacher_does_on_the_same_answers(
        fake_vllm: Path, image_folder: Path) -> None:
    pytest.importorskip("fastapi")
    manifest = read_folder(image_folder)
    vllm_store, http_store = JudgmentStore(), JudgmentStore()
    teacher = make_teacher("vllm:fake/Qwen2-VL", max_model_len=4096)
    report = teach(teacher, manifest, vllm_store, pairs_per_image=2, progress=False)
    with ServerThread(create_mock_app(MockBehaviour())) as server:
        http = OpenAITeacher(TeacherSettings(url=server.url + "/v1", model="mock"))
        teach(http, manifest, http_store, pairs_per_image=2, progress=False)
    assert report.points_new == 12 and report.pairs_new > 0 and report.points_failed == 0
    points, reference = vllm_store.points(teacher.teacher_id), http_store.points("openai:mock")
    assert set(points) == set(reference) == set(hash_manifest(manifest))
    for key, judgment in points.items():
        assert judgment.method == "logprobs"
        assert judgment.score == pytest.approx(reference[key].score, abs=1e-9)
        assert judgment.probs == pytest.approx(reference[key].probs, abs=1e-9)
    pairs = {(p.key_a, p.key_b): p for p in vllm_store.pairs(teacher.teacher_id)}
    reference_pairs = {(p.key_a, p.key_b): p for p in http_store.pairs("openai:mock")}
    assert pairs.keys() == reference_pairs.keys()
    for key, pair in pairs.items():  # both orders asked: the position bias cancels the same way
        assert pair.prob_a_better == pytest.approx(reference_pairs[key].prob_a_better, abs=1e-9)
    # one engine, with the options given, built on the first judgment
    assert len(engines(fake_vllm)) == 1


def test_the_engine_is_built_lazily_once(fake_vllm: Path, image_folder: Path) -> None:
    teacher = make_teacher("vllm:fake/model")
    assert engines(fake_vllm) == []  # the driver builds teachers for their id only
    items = list(read_folder(image_folder))
    for start in (0, 6):
        jobs = [PointJob(item, f"k{start + i}") for i, item in enumerate(items[start:start + 6])]
        assert all(isinstance(j, PointJudgment) for j in teacher.judge_points(jobs))
    assert len(engines(fake_vllm)) == 1
    teacher.close()


def test_an_unreadable_image_fails_alone_and_names_its_file(fake_vllm: Path,
                                                             image_folder: Path) -> None:
    items = list(read_folder(image_folder))[:3]
    broken = image_folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    bad = type(items[0])(path=broken, name="broken.jpg")
    jobs = [PointJob(items[0], "a"), PointJob(bad, "b"), PointJob(items[1], "c")]
    results = list(make_teacher("vllm:fake/model").judge_points(jobs))
    assert [type(r) for r in results] == [PointJudgment, JudgmentFailure, PointJudgment]
    assert "broken.jpg" in results[1].error


def test_without_vllm_installed_the_error_says_so(monkeypatch: pytest.MonkeyPatch,
                                                  image_folder: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    item = next(iter(read_folder(image_folder)))
    with pytest.raises(TeacherError, match="vllm is not installed"):
        list(make_teacher("vllm:some/model").judge_points([PointJob(item, "a")]))


def test_no_engine_is_built_when_no_image_can_be_sent(fake_vllm: Path, tmp_path: Path) -> None:
    from leafiqa.data.manifest import ImageItem

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    results = list(make_teacher("vllm:fake/model").judge_points(
        [PointJob(ImageItem(path=broken, name="broken.jpg"), "k")]))
    assert isinstance(results[0], JudgmentFailure) and engines(fake_vllm) == []


def test_vllm_options_are_refused_for_other_teachers(image_folder: Path) -> None:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    result = CliRunner().invoke(app, ["teach", "--data", str(image_folder), "--teacher", "cues",
                                      "--vllm-arg", "max_model_len=4096"])
    assert result.exit_code == 2 and "--vllm-arg is for a vllm:MODEL teacher" in result.output
