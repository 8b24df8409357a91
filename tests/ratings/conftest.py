from __future__ import annotations

from pathlib import Path

import pytest

from leafiqa.ratings.study import Study, StudySettings, read_image_list
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
