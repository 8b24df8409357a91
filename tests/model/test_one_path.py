"""One image, one score: the same files through every entry point (``leaf score`` with both
runtimes, ``leaf evaluate``, ``create_metric``, ``Scorer``, ``POST /score``) give the same
scores to float noise. The photos are JPEGs several times the model's input size: below twice
the decode side (decoded whole everywhere) and above it (decoded at a reduced DCT scale
everywhere, ``data.images.decode_side``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import leafiqa
from leafiqa.cli import app
from leafiqa.evaluation.metrics import evaluate
from leafiqa.model.scorer import Scorer

runner = CliRunner()
NOISE = 2e-4  # float32 ONNX Runtime against PyTorch, on a score scale of about 0.5…4.5


def large_photos(folder: Path, count: int = 6, size: tuple[int, int] = (480, 360)) -> list[Path]:
    """Textured JPEGs, by default 480×360: several times the model's 96 px, but less than twice
    its decode side (192 px) on the short side, so every entry point decodes them whole."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    width, height = size
    for index in range(count):
        coarse = rng.integers(0, 256, size=(45, 60, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        noise = rng.integers(-40, 40, size=(height, width, 3))
        pixels = np.clip(np.asarray(image, np.int16) + noise * (index % 3), 0, 255)
        path = folder / f"photo_{index}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # exported graphs go to a private cache
    return large_photos(tmp_path / "photos")


@pytest.fixture(params=[(480, 360), (1600, 1200)], ids=["decoded whole", "reduced scale"])
def entry_photos(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """480×360 photos (decoded whole) and 1600×1200 ones (decoded at 1/4 scale: 400×300 still
    covers twice the model's 96 px)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return large_photos(tmp_path / "photos", size=request.param)


def cli_scores(model: Path, photos: list[Path], out: Path, runtime: str) -> np.ndarray:
    result = runner.invoke(app, ["score", str(model), *map(str, photos), "--out", str(out),
                                 "--runtime", runtime, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    rows = {row["path"]: float(row["score"]) for row in csv.DictReader(out.open())}
    return np.array([rows[str(p)] for p in photos])


def test_every_entry_point_gives_the_same_scores(model_file: Path, entry_photos: list[Path],
                                                 tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from leafiqa.data.images import decode_side, open_rgb, to_pixels
    from leafiqa.serve.service import create_app

    photos = entry_photos
    reduced = Image.open(photos[0]).size[1] >= 4 * 96

    reference = leafiqa.create_metric(model_file, device="cpu")(photos).numpy()
    found = {
        "leaf score (onnx)": cli_scores(model_file, photos, tmp_path / "onnx.csv", "onnx"),
        "leaf score (torch)": cli_scores(model_file, photos, tmp_path / "torch.csv", "torch"),
        "create_metric(folder)": leafiqa.create_metric(model_file, device="cpu")(
            photos[0].parent).numpy(),
        "Scorer(path) torch": np.array([Scorer(model_file, runtime="torch")(p)
                                        for p in photos]),
        "Scorer.score_paths onnx": Scorer(model_file, runtime="onnx",
                                          precision="fp32").score_paths(photos),
        "Scorer(bytes)": np.array([Scorer(model_file, runtime="torch")(p.read_bytes())
                                   for p in photos]),
    }
    for runtime in ("torch", "onnx"):
        with TestClient(create_app(model_file, runtime=runtime)) as client:
            files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
            body = client.post("/score", files=files).json()
        found[f"POST /score ({runtime})"] = np.array(body["scores"], dtype=float)
    for name, scores in found.items():
        np.testing.assert_allclose(scores, reference, atol=NOISE, err_msg=name)
    # a PIL image holds its pixels already: scored as given, i.e. as a whole decoding
    scorer = Scorer(model_file, runtime="torch")
    given = np.array([scorer(Image.open(p)) for p in photos])
    whole = np.concatenate([scorer.score_pixels(*(level[None] for level in
                                                  to_pixels(open_rgb(p), (96,))))
                            for p in photos])
    np.testing.assert_allclose(given, whole, atol=NOISE)
    # the large photos did take the reduced-scale path (1/4: 400×300 still covers 2 × 96 px)
    decoded = open_rgb(photos[0], draft_side=decode_side((96,))).size
    assert decoded == ((400, 300) if reduced else (480, 360))


def test_leaf_evaluate_measures_what_the_metric_scores(model_file: Path, photos: list[Path],
                                                        tmp_path: Path) -> None:
    mos = np.linspace(1.0, 4.0, len(photos))
    table = tmp_path / "photos" / "data.csv"
    table.write_text("name,mos\n" + "".join(f"{p.name},{m}\n" for p, m in zip(photos, mos,
                                                                              strict=True)))
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(model_file), "--data", str(table), "--kind",
                                 "csv", "--subset", "", "--out", str(out)])
    assert result.exit_code == 0, result.output
    measured = json.loads(out.read_text())
    scores = leafiqa.create_metric(model_file, device="cpu")(photos).numpy()
    expected = evaluate(scores, mos)
    for key in ("srcc", "krcc", "plcc", "rmse"):
        assert measured[key] == pytest.approx(expected[key], abs=1e-3), key


def test_leaf_evaluate_takes_image_root_and_shows_progress(model_file: Path,
                                                           photos: list[Path],
                                                           tmp_path: Path) -> None:
    elsewhere = tmp_path / "tables"
    elsewhere.mkdir()
    table = elsewhere / "data.csv"
    table.write_text("name,mos\n" + "".join(f"{p.name},{i + 1}\n" for i, p in enumerate(photos)))
    args = ["evaluate", str(model_file), "--data", str(table), "--kind", "csv", "--subset", ""]
    missing = runner.invoke(app, args)
    assert missing.exit_code != 0  # the names are not beside the CSV
    result = runner.invoke(app, [*args, "--image-root", str(photos[0].parent)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == len(photos)
    assert f"{len(photos)}/{len(photos)}" in result.stderr  # the progress bar, on stderr
    quiet = runner.invoke(app, [*args, "--image-root", str(photos[0].parent), "--quiet"])
    assert quiet.exit_code == 0 and f"/{len(photos)}" not in quiet.stderr
