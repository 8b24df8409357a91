"""Model files record the images that trained them and ``leaf evaluate`` says how many of the
evaluated images those are (issue 20, item 5); metadata asking for more than a LEAF model
needs, or nested deeper than a parser can follow, is one clear error (item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from leafiqa.cli import app
from leafiqa.data.images import content_hash
from leafiqa.errors import ModelFileError
from leafiqa.model.file import ModelInfo, read_info

runner = CliRunner()


def rewrite(model: Path, out: Path, **changes: str) -> Path:
    """A copy of ``model`` whose metadata has ``changes``."""
    with safe_open(str(model), framework="pt") as handle:
        metadata = dict(handle.metadata())
    save_file(load_file(str(model)), str(out), metadata={**metadata, **changes})
    return out


def test_a_model_file_records_its_training_images_compactly(image_folder: Path) -> None:
    from leafiqa.model.file import seen_in_training, training_record

    keys = [content_hash(p) for p in sorted(image_folder.glob("*.jpg"))]
    record = training_record(keys[:8])
    assert record["count"] == 8 and len(json.dumps(record)) < 200  # about 11 chars an image
    info = ModelInfo(backbone="efficientnet-lite0", input_sizes=(96,), head={},
                     score_map=ModelInfo.__dataclass_fields__["output_map"].default_factory(),
                     trained_on=record)
    again = ModelInfo.from_metadata(info.to_metadata(), "m")
    assert seen_in_training(again, keys) == 8
    assert seen_in_training(again, keys[8:]) == 0


def test_evaluate_says_how_many_images_trained_the_model(model_file: Path, image_folder: Path,
                                                         tmp_path: Path) -> None:
    from leafiqa.model.file import training_record

    paths = sorted(image_folder.glob("*.jpg"))
    trained = tmp_path / "trained.safetensors"
    rewrite(model_file, trained, trained_on=json.dumps(
        training_record(content_hash(p) for p in paths[:5])))
    data = tmp_path / "all.csv"
    data.write_text("name,mos\n" + "".join(f"{p},{i}\n" for i, p in enumerate(paths)))
    result = runner.invoke(app, ["evaluate", str(trained), "--data", str(data), "--runtime",
                                 "torch"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seen_in_training"] == 5
    assert "5 of the 12 images evaluated trained this model" in result.stderr


def test_evaluate_tells_images_distilled_on_from_images_labelled(
        model_file: Path, image_folder: Path, tmp_path: Path) -> None:
    """A student is distilled on the whole folder it scores: images it only distilled on (the
    teacher's judgments) are a note, images whose labels calibrated it a warning (issue 31)."""
    from leafiqa.model.file import training_record

    paths = sorted(image_folder.glob("*.jpg"))
    model = tmp_path / "pooled.safetensors"
    rewrite(model_file, model,
            trained_on=json.dumps(training_record(content_hash(p) for p in paths)),
            labelled_on=json.dumps(training_record(content_hash(p) for p in paths[:3])))
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("name,mos\n" + "".join(f"{p},{i}\n" for i, p in enumerate(paths[3:])))
    result = runner.invoke(app, ["evaluate", str(model), "--data", str(unlabelled),
                                 "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["seen_in_training"] == 9 and metrics["labelled_in_training"] == 0
    assert "note: 9 of the 9 images evaluated were distilled on" in result.stderr
    assert "warning" not in result.stderr.replace("warning: the data's MOS", "")
    every = tmp_path / "all.csv"
    every.write_text("name,mos\n" + "".join(f"{p},{i}\n" for i, p in enumerate(paths)))
    result = runner.invoke(app, ["evaluate", str(model), "--data", str(every),
                                 "--runtime", "torch"])
    assert json.loads(result.stdout)["labelled_in_training"] == 3
    assert "3 of the 12 images evaluated trained this model with their labels" in result.stderr


def test_a_model_without_the_record_evaluates_as_unknown(model_file: Path, image_folder: Path,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "all.csv"
    data.write_text("name,mos\n" + "".join(
        f"{p},{i}\n" for i, p in enumerate(sorted(image_folder.glob("*.jpg")))))
    result = runner.invoke(app, ["evaluate", str(model_file), "--data", str(data), "--runtime",
                                 "torch"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seen_in_training"] == "unknown"
    assert "unknown" in result.stderr


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"input_sizes": "[20000]"}, "input sizes [20000]"),
    ({"input_sizes": "[64, 96, 128, 160, 192]"}, "at most 4 sizes"),
    ({"head": json.dumps({"dim": 60000, "hidden": 1, "dropout": 0.0, "components": 60000})},
     "GB"),
    ({"head": json.dumps({"dim": "1280", "hidden": 1, "dropout": 0.0, "components": 1})},
     "head.dim"),
    ({"card": "[" * 200_000 + "]" * 200_000}, "nested too deep"),
    ({"notes": '{"a": ' * 200_000 + "1" + "}" * 200_000}, "nested too deep"),
])
def test_metadata_beyond_any_leaf_model_is_refused(model_file: Path, tmp_path: Path,
                                                   changes: dict, fragment: str) -> None:
    hostile = rewrite(model_file, tmp_path / "hostile.safetensors", **changes)
    with pytest.raises(ModelFileError, match="hostile.safetensors") as raised:
        read_info(hostile)
    assert fragment in str(raised.value)
    result = runner.invoke(app, ["score", str(hostile), str(model_file), "--runtime", "torch"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0]
