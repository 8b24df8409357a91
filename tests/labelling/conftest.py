from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from leafiqa.labelling.study import Study, StudySettings, read_image_list
from tests.conftest import make_image


def make_study(folder: Path, images: int = 8, gold: dict[str, float] | None = None,
               **settings: object) -> Study:
    """A study of ``images`` small images (``img0.jpg`` … sharp to blurred) and, for each gold
    name, one more image with that known answer."""
    source = folder / "photos"
    for k in range(images):
        make_image(source / f"img{k}.jpg", seed=k, blur=k * 0.4)
    gold_images = []
    for k, name in enumerate(gold or {}):
        gold_images.append((name, make_image(folder / "gold" / name, seed=100 + k).resolve()))
    return Study.create(folder / "study", read_image_list(source),
                        StudySettings(gold=dict(gold or {}), **settings), gold_images)


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return make_study(tmp_path, gold={"gold_good.jpg": 5.0, "gold_bad.jpg": 1.0}, repeats=2)


@contextmanager
def made_read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made one nobody can create files in, for the block: chmod for a user,
    chattr +i for root (permission bits do not stop root)."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"running as root and chattr +i failed ({done.stderr.decode().strip()})")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


def rated_study(folder: Path) -> Study:
    """A study of 3 images, one rater, one rating (4 on step 0)."""
    study = make_study(folder, images=3)
    (rater, _), = study.add_raters(1)
    study.record(rater.id, 0, 4.0)
    return study


@pytest.fixture
def read_only_study(tmp_path: Path) -> Iterator[Study]:
    """A study with one rating in a folder nobody can create files in."""
    study = rated_study(tmp_path)
    with made_read_only(study.folder):
        yield study
