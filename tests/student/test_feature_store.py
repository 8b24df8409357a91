"""The feature store: append-only .npy shards by content hash, resumable, migrating old .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.data.readers import read_plain_csv
from leafiqa.judgments.runner import hash_manifest
from leafiqa.student.feature_store import FeatureStore
from leafiqa.student.features import FeatureExtractor, SingleSizeFeatures
from tests.conftest import make_image


def _rows(n: int, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_append_get_reopen_and_dedup(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    rows = _rows(6)
    store.append(["a", "b", "c"], rows[:3])
    store.append(["c", "d", "d", "e"], np.stack([rows[5], rows[3], rows[0], rows[4]]))
    assert len(store) == 5
    np.testing.assert_array_equal(store.get(["e", "a", "c", "d"]),
                                  np.stack([rows[4], rows[0], rows[2], rows[3]]))
    reopened = FeatureStore(tmp_path / "store")
    assert len(reopened) == 5
    np.testing.assert_array_equal(reopened.get(["c", "d"]), rows[2:4])  # first write wins
    assert len(list((tmp_path / "store").glob("shard-*.npy"))) == 2
    with pytest.raises(KeyError, match="not in the feature store"):
        reopened.get(["a", "zz"])


def test_a_shard_cut_short_by_a_kill_is_ignored(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    store.append(["a", "b"], _rows(2))
    # a kill between writing the features and the keys, and one while writing the features
    np.save(tmp_path / "store" / "shard-99999999999999999999-1.npy", _rows(2))
    (tmp_path / "store" / "shard-99999999999999999999-2.npy.tmp").write_bytes(b"\x93NUMPY")
    reopened = FeatureStore(tmp_path / "store")
    assert sorted(reopened._index) == ["a", "b"]
    reopened.append(["c"], _rows(1, seed=3))
    assert len(FeatureStore(tmp_path / "store")) == 3


def test_chunked_source_reads_the_same_rows(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    keys = [f"k{i}" for i in range(23)]
    rows = _rows(23)
    for start in range(0, 23, 7):
        store.append(keys[start:start + 7], rows[start:start + 7])
    order = keys[::-1]
    source = store.source(order, chunk_rows=4)
    got = np.concatenate([chunk for _, chunk in source.chunks()])
    np.testing.assert_array_equal(got, rows[::-1])


def test_old_npz_cache_is_migrated_once_and_kept(tmp_path: Path) -> None:
    old = tmp_path / "features-x.npz"
    rows = _rows(4)
    np.savez(old, keys=np.array(["a", "b", "c", "d"]), features=rows)
    store = FeatureStore(tmp_path / "features-x", old)
    np.testing.assert_array_equal(store.get(["d", "a"]), rows[[3, 0]])
    assert old.is_file()
    FeatureStore(tmp_path / "features-x", old)  # unchanged .npz: nothing imported again
    assert len(list((tmp_path / "features-x").glob("shard-*.npy"))) == 1
    more = _rows(6, seed=1)
    np.savez(old, keys=np.array(["a", "b", "c", "d", "e", "f"]), features=more)
    store = FeatureStore(tmp_path / "features-x", old)  # grown: only the new keys come in
    assert len(list((tmp_path / "features-x").glob("shard-*.npy"))) == 2
    np.testing.assert_array_equal(store.get(["a", "f"]), np.stack([rows[0], more[5]]))


def test_damaged_old_cache_is_skipped_not_fatal(tmp_path: Path) -> None:
    old = tmp_path / "features-x.npz"
    old.write_bytes(b"not a zip")
    assert len(FeatureStore(tmp_path / "features-x", old)) == 0


def _pixel_means(pixels: np.ndarray) -> np.ndarray:
    return pixels.mean(axis=(2, 3)).astype(np.float32)


def test_extraction_resumes_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    folder = tmp_path / "images"
    lines = ["name"]
    for i in range(10):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
        lines.append(f"im{i}.jpg")
    make_image(folder / "copy.jpg", seed=3, size=32)  # the same bytes as im3: one key
    lines.append("copy.jpg")
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    manifest = read_plain_csv(folder / "data.csv")
    keys = hash_manifest(manifest, progress=False)
    calls: list[int] = []

    def killed_after_two(self: SingleSizeFeatures, pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape[0])
        if len(calls) > 2:
            raise KeyboardInterrupt
        return _pixel_means(pixels)

    def counting(self: SingleSizeFeatures, pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape[0])
        return _pixel_means(pixels)

    def extractor() -> SingleSizeFeatures:
        return SingleSizeFeatures("efficientnet-lite0", 32, tmp_path / "cache", "torch",
                                  batch_size=2, workers=0, shard_rows=2)

    monkeypatch.setattr(SingleSizeFeatures, "_forward", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        extractor().transform(manifest, keys, progress=False)
    calls.clear()
    monkeypatch.setattr(SingleSizeFeatures, "_forward", counting)
    resumed = extractor().transform(manifest, keys, progress=False)
    assert sum(calls) == 10 - 4  # 4 images were stored before the kill; im3's copy is im3
    calls.clear()
    fresh_cache = tmp_path / "fresh"
    whole = SingleSizeFeatures("efficientnet-lite0", 32, fresh_cache, "torch", batch_size=2,
                               workers=0).transform(manifest, keys, progress=False)
    np.testing.assert_array_equal(resumed, whole)
    np.testing.assert_array_equal(resumed[3], resumed[10])
    again = extractor().transform(manifest, keys, progress=False)
    np.testing.assert_array_equal(again, whole)
    assert sum(calls) == 10  # only the fresh cache's extraction ran


def test_pyramid_source_concatenates_the_sizes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "images"
    for i in range(5):
        make_image(folder / f"im{i}.jpg", seed=i, size=32)
    (folder / "data.csv").write_text("name\n" + "".join(f"im{i}.jpg\n" for i in range(5)))
    manifest = read_plain_csv(folder / "data.csv")
    keys = hash_manifest(manifest, progress=False)
    monkeypatch.setattr(SingleSizeFeatures, "_forward",
                        lambda self, pixels: _pixel_means(pixels) + self.input_size)
    extractor = FeatureExtractor("efficientnet-lite0", [32, 48], tmp_path / "cache", "torch",
                                 batch_size=2, workers=0)
    whole = extractor.transform(manifest, keys, progress=False)
    source = extractor.source(keys, chunk_rows=2)
    np.testing.assert_array_equal(np.concatenate([c for _, c in source.chunks()]), whole)
