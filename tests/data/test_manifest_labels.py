"""``with_labels``: a pool of images takes the MOS a label file gives some of them, matched by
file; a label outside the pool is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from leafiqa.data.manifest import ImageItem, Manifest, with_labels
from leafiqa.errors import DataError


def test_the_pool_takes_the_labels_by_file_and_the_rest_have_none(tmp_path: Path) -> None:
    files = []
    for k in range(4):
        files.append(tmp_path / "photos" / f"p{k}.jpg")
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_bytes(b"x")
    pool = Manifest([ImageItem(f, f.name, mos=9.0) for f in files], "photos")
    # written elsewhere: names relative to the label file, the same files
    labels = Manifest([ImageItem(files[2], "../photos/p2.jpg", mos=3.5, std=0.5),
                       ImageItem(files[0], "../photos/p0.jpg", mos=1.0)], "labels.csv")
    labelled = with_labels(pool, labels)
    assert [item.name for item in labelled] == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]
    assert [item.mos for item in labelled] == [1.0, None, 3.5, None]
    assert labelled[2].std == 0.5 and labelled[1].std is None


def test_a_label_outside_the_pool_is_named(tmp_path: Path) -> None:
    inside, outside = tmp_path / "a.jpg", tmp_path / "elsewhere.jpg"
    for file in (inside, outside):
        file.write_bytes(b"x")
    pool = Manifest([ImageItem(inside, "a.jpg")], "photos")
    labels = Manifest([ImageItem(outside, "elsewhere.jpg", mos=2.0)], "labels.csv")
    with pytest.raises(DataError, match=r"labels.csv: 1 labelled image\(s\) are not in the pool "
                                        r"photos: elsewhere.jpg"):
        with_labels(pool, labels)
