from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from leafiqa.data import (
    DataError,
    ImageDecodeError,
    content_hash,
    load_model_input,
    read_agiqa3k,
    read_folder,
    read_kadid10k,
    read_koniq10k,
    read_live_challenge,
    read_plain_csv,
    read_spaq,
)
from leafiqa.data.loader import iter_batches
from tests.conftest import AGIQA, make_image, needs_agiqa


def test_plain_csv_reads_names_mos_std_split(plain_manifest_csv: Path) -> None:
    manifest = read_plain_csv(plain_manifest_csv)
    assert len(manifest) == 12
    assert manifest[1].mos == pytest.approx(4.7)
    assert manifest[1].std == pytest.approx(0.5)
    assert {i.split for i in manifest} == {"train", "test"}
    assert len(manifest.split("test")) == 3


def test_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("name,score\na.jpg,3\n")
    with pytest.raises(DataError, match=r"data\.csv: missing column.*mos_quality"):
        read_agiqa3k(tmp_path, split=None, check_files=False)


def test_non_numeric_mos_names_row_and_field(image_folder: Path) -> None:
    csv = image_folder / "m.csv"
    csv.write_text("name,mos\nimage_00.jpg,3.1\nimage_01.jpg,great\n")
    with pytest.raises(DataError, match=r"m\.csv: row 3, column 'mos'.*'great'"):
        read_plain_csv(csv)


def test_missing_image_names_row_and_path(image_folder: Path) -> None:
    csv = image_folder / "m.csv"
    csv.write_text("name,mos\nimage_00.jpg,3.1\nnope.jpg,2\n")
    with pytest.raises(DataError, match=r"row 3: .*nope\.jpg"):
        read_plain_csv(csv)


def test_agiqa3k_layout_with_splits(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(3):
        make_image(images / f"x_{i}.jpg", seed=i)
    (tmp_path / "data.csv").write_text(
        "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align,mos\n"
        + "".join(f"x_{i}.jpg,p,,,,{i + 1}.5,0.3,2,0.1,{i + 1}.5\n" for i in range(3)))
    (tmp_path / "splits.csv").write_text(
        "name,split_1,split_2\nx_0.jpg,train,test\nx_1.jpg,test,train\nx_2.jpg,train,train\n")
    manifest = read_agiqa3k(tmp_path, split="split_2")
    assert [i.split for i in manifest] == ["test", "train", "train"]
    assert manifest.mos_array() == [1.5, 2.5, 3.5]
    with pytest.raises(DataError, match="split_9"):
        read_agiqa3k(tmp_path, split="split_9")


def test_koniq_kadid_spaq_livec_layouts(tmp_path: Path) -> None:
    koniq = tmp_path / "koniq"
    make_image(koniq / "1024x768" / "k1.jpg", 1)
    (koniq / "koniq10k_scores_and_distributions.csv").write_text(
        "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore\nk1.jpg,0,1,2,3,4,10,3.2,0.7,55\n")
    assert read_koniq10k(koniq)[0].mos == pytest.approx(3.2)

    kadid = tmp_path / "kadid"
    make_image(kadid / "images" / "I01_01_01.png", 2)
    (kadid / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.25\n")
    item = read_kadid10k(kadid)[0]
    assert item.mos == pytest.approx(4.57) and item.std == pytest.approx(0.5)

    spaq = tmp_path / "spaq"
    make_image(spaq / "TestImage" / "00001.jpg", 3)
    (spaq / "mos.csv").write_text("Image name,MOS,Brightness\n00001.jpg,42.6,50\n")
    assert read_spaq(spaq)[0].mos == pytest.approx(42.6)

    livec = tmp_path / "livec"
    make_image(livec / "Images" / "a.bmp", 4)
    make_image(livec / "Images" / "b.bmp", 5)
    (livec / "Data").mkdir()
    names = np.empty((2, 1), dtype=object)
    names[0, 0], names[1, 0] = np.array(["a.bmp"]), np.array(["b.bmp"])
    savemat(livec / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(livec / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[63.9, 25.3]])})
    manifest = read_live_challenge(livec)
    assert [i.name for i in manifest] == ["a.bmp", "b.bmp"]
    assert manifest.mos_array() == pytest.approx([63.9, 25.3])


def test_corrupt_image_is_a_named_error_and_loader_reports_it(image_folder: Path) -> None:
    bad = image_folder / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ImageDecodeError, match="corrupt.jpg"):
        load_model_input(bad, 64)
    paths = [image_folder / "image_00.jpg", bad, image_folder / "image_01.jpg"]
    batches = list(iter_batches(paths, 64, batch_size=8, workers=0))
    assert batches[0].indices == [0, 2]
    assert batches[0].pixels.shape == (2, 3, 64, 64)
    assert batches[0].failures[0][0] == 1 and "corrupt.jpg" in batches[0].failures[0][1]


def test_pyramid_batches_hold_every_size_resized_from_the_original(image_folder: Path) -> None:
    paths = sorted(image_folder.glob("*.jpg"))[:3]
    (batch,) = list(iter_batches(paths, [48, 96], batch_size=8, workers=0))
    assert [level.shape for level in batch.levels] == [(3, 3, 48, 48), (3, 3, 96, 96)]
    assert np.array_equal(batch.levels[1][2], load_model_input(paths[2], 96))
    assert np.array_equal(batch.levels[0][0], load_model_input(paths[0], 48))


@pytest.mark.parametrize("bad", [[], [224, 224], [16], "224,512", [224.5]])
def test_bad_input_sizes_are_refused(bad: object) -> None:
    from leafiqa.data.images import as_sizes

    with pytest.raises(ValueError, match="size"):
        as_sizes(bad)  # type: ignore[arg-type]


def test_content_hash_follows_bytes_not_names(image_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes((image_folder / "image_03.jpg").read_bytes())
    assert content_hash(copy) == content_hash(image_folder / "image_03.jpg")
    assert content_hash(copy) != content_hash(image_folder / "image_04.jpg")


def test_folder_reader_is_recursive_and_sorted(image_folder: Path) -> None:
    make_image(image_folder / "sub" / "z.png", 99)
    names = read_folder(image_folder).names
    assert names[-1] == "sub/z.png" and len(names) == 13


@needs_agiqa
def test_real_agiqa3k_has_2982_images_and_fixed_splits() -> None:
    manifest = read_agiqa3k(AGIQA, split="split_1")
    assert len(manifest) == 2982
    assert len(manifest.split("train")) == 2386 and len(manifest.split("test")) == 596
