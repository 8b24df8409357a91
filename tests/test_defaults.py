"""The cache: the user's cache folder by default, LEAF_CACHE when set, a config's or a
command's own folder when named; and the test session never touches the user's real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from platformdirs import user_cache_dir

from leafiqa.config import RunConfig
from leafiqa.defaults import CACHE_ENV, cache_folder, default_cache
from tests.conftest import SESSION_CACHE


def test_the_default_cache_is_the_users_cache_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache() == Path(user_cache_dir("leaf-iqa"))
    assert RunConfig(output="runs/x").cache_dir == Path(user_cache_dir("leaf-iqa"))
    assert not default_cache().is_relative_to(Path.cwd())  # not under the working directory


def test_leaf_cache_names_another_folder_read_at_each_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache() == tmp_path / "mine"
    assert cache_folder(None) == tmp_path / "mine"
    assert cache_folder(tmp_path / "named") == tmp_path / "named"
    assert RunConfig().cache_dir == tmp_path / "mine"
    assert RunConfig(cache=str(tmp_path / "c")).cache_dir == tmp_path / "c"
    monkeypatch.setenv(CACHE_ENV, "~/somewhere")
    assert default_cache() == Path.home() / "somewhere"


def test_the_test_session_caches_in_a_temporary_folder() -> None:
    assert default_cache() == SESSION_CACHE
    assert not SESSION_CACHE.is_relative_to(Path(user_cache_dir("leaf-iqa")))


def test_commands_default_to_the_default_cache() -> None:
    import typer

    from leafiqa.cli import app

    command = typer.main.get_command(app)
    for name in ("distill", "calibrate", "select"):
        options = {p.name: p for p in command.commands[name].params}  # type: ignore[attr-defined]
        assert options["cache"].default is None, name  # None: default_cache() at call time
        assert CACHE_ENV in (options["cache"].help or "")
