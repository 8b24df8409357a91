"""``leaf teach`` survives one bad input (issue 20, item 6): a file name that is not UTF-8 is
judged and stored (escaped) like any other; a named pipe among the images is skipped with its
reason instead of hanging the run."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from typer.testing import CliRunner

from leafiqa.cli import app
from tests.conftest import make_image

runner = CliRunner()


def teach(folder: Path, store: Path):  # noqa: ANN201
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = runner.invoke(app, ["teach", "--data", str(folder), "--store",
                                                str(store), "--quiet", "--pairs-per-image",
                                                "0"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "leaf teach hangs"
    result = outcome["result"]
    assert "Traceback" not in result.output, result.output
    return result


def test_a_name_that_is_not_utf8_is_judged_and_stored_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    for i in range(3):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
    make_image(folder / os.fsdecode(b"caf\xe9.jpg"), seed=7, size=32)  # Latin-1
    store = tmp_path / "j.sqlite"
    result = teach(folder, store)
    assert result.exit_code == 0, result.output
    assert "4 new" in result.output
    with sqlite3.connect(store) as db:
        names = sorted(row[0] for row in db.execute("SELECT name FROM images"))
    assert names == ["caf\\xe9.jpg", "im0.jpg", "im1.jpg", "im2.jpg"]


def test_a_named_pipe_is_skipped_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    for i in range(3):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
    os.mkfifo(folder / "pipe.png")
    result = teach(folder, tmp_path / "j.sqlite")
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output and "pipe.png: not a regular file (named pipe)" in (
        result.output)
