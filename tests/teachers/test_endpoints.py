"""Several OpenAI-compatible endpoints behind one teacher (``leafiqa.teachers.endpoints``),
against real mock servers on 127.0.0.1: one of them failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from leafiqa.data import read_folder
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.endpoints import EndpointPool, pooled_teacher
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app, free_port

pytest.importorskip("fastapi")


class CountConcurrent:
    """ASGI middleware recording the most requests in flight at once."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app, self.now, self.most = app, 0, 0

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


def test_requests_spread_and_a_dead_endpoint_is_backed_off(image_folder: Path) -> None:
    first, second = MockBehaviour(latency=0.02), MockBehaviour(latency=0.02)
    app_a, app_b = CountConcurrent(create_mock_app(first)), CountConcurrent(create_mock_app(second))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    store = JudgmentStore()
    with ServerThread(app_a) as a, ServerThread(app_b) as b:
        # the dead endpoint's backoff outlasts any run, however loaded the machine: with a
        # few seconds it could expire near the end (a wall-clock race) and read "healthy"
        teacher = pooled_teacher([a.url + "/v1", dead, b.url + "/v1"], concurrency=2,
                                 model="mock", backoff_base=0.01, endpoint_backoff=600.0,
                                 endpoint_backoff_max=600.0)
        report = teach(teacher, read_folder(image_folder), store, pairs_per_image=2,
                       progress=False)
    assert report.points_new == 12 and report.points_failed == 0
    assert report.pairs_failed == 0 and report.pairs_new == report.pairs_planned > 0
    stats = {s.url: s for s in teacher.endpoint_pool.stats()}
    # the healthy servers carried the run between them, each within its own concurrency
    assert first.successes > 5 and second.successes > 5
    assert app_a.most <= 2 and app_b.most <= 2
    # the dead one was tried, failed, and backed off instead of taking its share
    assert 1 <= stats[dead].failed == stats[dead].requests <= 3
    assert stats[dead].backed_off and stats[dead].ok == 0
    assert len(store.points("openai:mock")) == 12


def test_a_failing_endpoint_comes_back_after_its_backoff(image_folder: Path) -> None:
    # the flaky server's first two requests fail, whichever images they ask about; the healthy
    # one is slow, so the flaky one is picked again once its backoff is over
    flaky = MockBehaviour(fault="500", fault_times=2, fault_scope="server")
    healthy = MockBehaviour(latency=0.05)
    store = JudgmentStore()
    with ServerThread(create_mock_app(flaky)) as a, ServerThread(create_mock_app(healthy)) as b:
        teacher = pooled_teacher([a.url + "/v1", b.url + "/v1"], concurrency=1, model="mock",
                                 backoff_base=0.01, endpoint_backoff=0.01,
                                 endpoint_backoff_max=0.05)
        report = teach(teacher, read_folder(image_folder), store, progress=False)
    assert report.points_new == 12 and report.points_failed == 0
    stats = {s.url.rsplit("/v1", 1)[0]: s for s in teacher.endpoint_pool.stats()}
    assert stats[a.url].failed >= 1 and stats[a.url].ok >= 1  # failed, backed off, came back
    assert flaky.successes + healthy.successes == 12


def test_pool_rejects_bad_urls() -> None:
    with pytest.raises(ValueError, match="expected http"):
        EndpointPool(["localhost:8000/v1"])
    with pytest.raises(ValueError, match="at least one"):
        EndpointPool([])


def test_teach_cli_takes_several_urls_and_reports_each(image_folder: Path,
                                                      tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    dead = f"http://127.0.0.1:{free_port()}/v1"
    with ServerThread(create_mock_app(MockBehaviour())) as server:
        result = CliRunner().invoke(app, [
            "teach", "--data", str(image_folder), "--teacher", "openai", "--model", "mock",
            "--url", server.url + "/v1", "--url", dead, "--concurrency", "2",
            "--pairs-per-image", "0", "--store", str(tmp_path / "s.sqlite"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "point-wise 12 new" in result.output and "0 failed" in result.output
    assert f"{dead}: " in result.output and "backed off" in result.output
    assert f"{server.url}/v1: " in result.output and "healthy" in result.output
