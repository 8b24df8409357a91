"""``leaf score`` for people and scripts (issue 22, item 1) and runs that survive one bad input
(issue 20, items 6 and 7): a score on stdout and nothing else there, CSV to stdout, each
failure once, ``--quiet``; names that are not UTF-8, named pipes, outputs that exist, that are
inputs, or that fail to write at the end; CSV cells that could run as formulas."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import leafiqa
from leafiqa.cli import app
from tests.conftest import make_image

runner = CliRunner()
SCORE = ["--runtime", "torch", "--workers", "0", "--batch-size", "4"]
BAD_NAME = os.fsdecode(b"bad\xff.jpg")  # a Latin-1 name: not UTF-8


def score(*args: object):  # noqa: ANN201
    result = runner.invoke(app, ["score", *(str(a) for a in args), *SCORE])
    assert "Traceback" not in result.output, result.output
    return result


def in_thread(function, seconds: float = 180.0):  # noqa: ANN001, ANN201
    """Run ``function`` and fail (instead of hanging the suite) when it does not return."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("value", function()),
                              daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds:.0f} s (hangs)"
    return outcome["value"]


def test_one_image_prints_its_score_and_nothing_else(model_file: Path, image_folder: Path,
                                                     tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = score(model_file, image_folder / "image_00.jpg")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    float(result.stdout)  # the score alone
    assert "scored 1 image in" in result.stderr  # a summary on stderr, singular
    assert not (tmp_path / "scores.csv").exists()  # nothing written behind the user's back


def test_several_images_print_path_tab_score(model_file: Path, image_folder: Path) -> None:
    result = score(model_file, image_folder)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    for line, index in zip(lines, range(12), strict=True):
        path, value = line.split("\t")
        assert path.endswith(f"image_{index:02d}.jpg") and float(value) > 0
    assert "scored 12 images" in result.stderr


def test_out_dash_streams_csv_to_stdout(model_file: Path, image_folder: Path) -> None:
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    result = score(model_file, image_folder, "--out", "-")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 13 and list(rows[0]) == ["path", "score", "error"]
    assert [r["score"] for r in rows if r["path"].endswith("broken.jpg")] == [""]


def test_quiet_leaves_stderr_empty(model_file: Path, image_folder: Path) -> None:
    result = score(model_file, image_folder / "image_01.jpg", "--quiet")
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    float(result.stdout)


def test_each_failure_is_printed_once(model_file: Path, image_folder: Path,
                                      tmp_path: Path) -> None:
    """A real process (in-process runs share pytest's logging setup): the broken file is
    named once on stderr, not as ``WARNING:root:skipped …`` and again as ``skipped: …``."""
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    env = {**os.environ, "PYTHONPATH": str(Path(leafiqa.__file__).parents[1])}
    process = subprocess.run(
        [sys.executable, "-m", "leafiqa", "score", str(model_file), str(image_folder),
         "--out", str(tmp_path / "s.csv"), *SCORE],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert process.returncode == 0, process.stderr
    assert process.stderr.count("broken.jpg") == 1, process.stderr
    assert "WARNING:root" not in process.stderr and process.stdout == ""


def test_an_existing_output_is_not_replaced_without_force(model_file: Path,
                                                          image_folder: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    out.write_text("[]")
    result = score(model_file, image_folder, "--out", out)
    assert result.exit_code == 2 and "--force" in result.output and out.read_text() == "[]"
    result = score(model_file, image_folder, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())) == 12


def test_an_existing_scores_csv_is_resumed(model_file: Path, image_folder: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    done = image_folder / "image_00.jpg"
    out.write_text(f"path,score,error\n{done},1.000000,\n{image_folder / 'image_01.jpg'},2.0")
    result = score(model_file, image_folder, "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    paths = [r["path"] for r in rows]
    assert len(rows) == 12 and len(set(paths)) == 12  # the cut last row was scored again
    assert rows[0]["score"] == "1.000000"  # kept, not scored again
    assert "resuming" in result.stderr


def test_an_input_is_never_an_output(model_file: Path, image_folder: Path,
                                     tmp_path: Path) -> None:
    listing = tmp_path / "images.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in sorted(image_folder.iterdir())))
    before = listing.read_text()
    for extra in ([], ["--force"]):
        result = score(model_file, listing, "--out", listing, *extra)
        assert result.exit_code == 2 and "is one of the inputs" in result.output
        assert listing.read_text() == before


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_a_write_failure_at_the_end_keeps_every_score(model_file: Path, image_folder: Path,
                                                      tmp_path: Path, monkeypatch,
                                                      suffix: str) -> None:
    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    monkeypatch.setattr(json, "dumps", disk_full)
    out = tmp_path / f"scores{suffix}"
    result = score(model_file, image_folder, "--out", out)
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "No space left" in error[0] and "kept in" in error[0]
    kept = [p for p in tmp_path.iterdir() if p.name.endswith(".partial.csv")]
    assert len(kept) == 1 and kept[0].name in error[0]
    rows = list(csv.DictReader(kept[0].open()))
    assert len(rows) == 12 and all(float(r["score"]) > 0 for r in rows)
    assert not out.exists()


def test_names_that_are_not_utf8_are_scored_and_escaped(model_file: Path, image_folder: Path,
                                                        tmp_path: Path) -> None:
    make_image(image_folder / BAD_NAME, seed=99)
    out = tmp_path / "scores.csv"
    result = score(model_file, image_folder, "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 13
    bad = [r for r in rows if r["path"].endswith("bad\\xff.jpg")]
    assert len(bad) == 1 and float(bad[0]["score"]) > 0
    text = score(model_file, image_folder)
    assert text.exit_code == 0 and "bad\\xff.jpg\t" in text.stdout


def test_a_named_pipe_is_skipped_with_a_reason(model_file: Path, image_folder: Path,
                                               tmp_path: Path) -> None:
    os.mkfifo(image_folder / "pipe.jpg")
    out = tmp_path / "scores.csv"
    result = in_thread(lambda: score(model_file, image_folder, "--out", out))
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(out.open()))) == 12
    assert "pipe.jpg: not a regular file (named pipe)" in result.stderr
    named = in_thread(lambda: score(model_file, image_folder / "pipe.jpg",
                                    image_folder / "image_00.jpg"))
    assert named.exit_code == 0 and len(named.stdout.splitlines()) == 1
    assert "pipe.jpg: not a regular file (named pipe)" in named.stderr


def test_cells_that_could_run_as_formulas_are_quoted(model_file: Path, image_folder: Path,
                                                     tmp_path: Path, monkeypatch) -> None:
    make_image(image_folder / "=1+2.jpg", seed=1)
    (image_folder / "@cmd.jpg").write_bytes(b"not an image")
    (image_folder / "-x.jpg").write_bytes(b"not an image")
    (image_folder / "list.txt").write_text("-x.jpg\n")  # a name an option parser would take
    monkeypatch.chdir(image_folder)
    out = tmp_path / "scores.csv"
    result = score(model_file, "=1+2.jpg", "@cmd.jpg", "list.txt", "--out", out)
    assert result.exit_code == 0, result.output
    cells = [cell for row in csv.reader(out.open()) for cell in row]
    risky = [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]
    assert risky == [], risky
    assert "'=1+2.jpg" in cells and "'@cmd.jpg" in cells and "'-x.jpg" in cells
