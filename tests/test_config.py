"""Typed config (issue 13 item 7, issue 15 item 2): wrong types are one clear error naming the
field, reading a YAML imports no stage, the schema documents every key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from leafiqa.config import (
    CalibrationConfig,
    DistillConfig,
    RunConfig,
    build_config,
    config_schema,
    config_to_dict,
    load_config,
)
from leafiqa.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("values", "field"), [
    ({"labels": {"budget": "ten"}}, "labels.budget"),
    ({"distill": {"hidden": "wide"}}, "distill.hidden"),
    ({"student": {"input_size": "224,512"}}, "student.input_size"),
    ({"student": {"input_size": [224, 224]}}, "student.input_size"),
    ({"teacher": {"ensemble": "qbench:x.json"}}, "teacher.ensemble"),
    ({"data": {"limit": -3}}, "data.limit"),
    ({"labels": {"bugdet": 0.1}}, "labels.bugdet"),
    ({"calibration": {"steps": [1]}}, "calibration.steps"),
    ({"data": "agiqa3k"}, "data"),
])
def test_wrong_types_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(values, "run.yaml")
    message = str(caught.value)
    assert message.startswith(f"run.yaml: {field}") and "\n" not in message


@pytest.mark.parametrize("key", ["teacher_weight", "teacher_half_life"])
def test_removed_keys_say_why(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^old.yaml: calibration\.{key}: removed: .*delete it"):
        build_config({"calibration": {key: 1.0}}, "old.yaml")


def test_shipped_configs_load_and_keep_their_shape() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path)
        assert isinstance(config, RunConfig)
    config = load_config(REPO / "configs" / "demo.yaml", {"distill.hidden": 32})
    assert config.distill.hidden == 32 and config.student.input_size == [224, 512]
    assert dataclasses.replace(config.distill, seed=4).seed == 4  # bench.py does this
    config.data.limit = 10  # and this
    assert config_to_dict(config)["data"]["limit"] == 10
    assert config.judgments_path.name == "judgments.sqlite"


def test_reading_a_config_does_not_import_torch() -> None:
    code = ("import sys; from leafiqa.config import load_config; "
            f"load_config({str(REPO / 'configs' / 'demo.yaml')!r}); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ,
                                          "PYTHONPATH": str(REPO / "src")})
    assert out.stdout.strip() == "False"


def test_stages_use_the_config_sections_themselves() -> None:
    """Each default is stated once: the stages take their sections from config.py."""
    from leafiqa.calibration.finetune import CalibrationConfig as StageCalibration
    from leafiqa.student.distill import DistillConfig as StageDistill

    assert StageDistill is DistillConfig and StageCalibration is CalibrationConfig
    tuned = dataclasses.replace(DistillConfig(), seed=3, pair_weight=0.0)
    assert (tuned.seed, tuned.pair_weight, tuned.target) == (3, 0.0, "logit")


def test_schema_documents_every_section() -> None:
    schema = config_schema()
    text = yaml.safe_dump(schema)
    for key in ("labels", "budget", "input_size", "api_key_env", "pairs_per_image"):
        assert key in text


number = st.floats(allow_nan=False, allow_infinity=False) | st.integers()
scalar = st.none() | st.booleans() | number | st.text(max_size=6)
value = st.recursive(scalar, lambda c: st.lists(c, max_size=3)
                     | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)
sections = st.dictionaries(
    st.sampled_from(["data", "teacher", "student", "distill", "calibration", "labels",
                     "output", "bench", "cache", "extra"]),
    st.dictionaries(st.sampled_from(["kind", "budget", "hidden", "input_size", "spec", "steps",
                                     "limit", "seed", "typo"]), value, max_size=3) | value,
    max_size=4)


@given(sections)
@settings(max_examples=200, deadline=None)
def test_any_yaml_mapping_is_a_config_or_one_config_error(values: dict) -> None:
    try:
        config = build_config(values, "x.yaml")
    except ConfigError as error:
        assert str(error).startswith("x.yaml: ") and "\n" not in str(error)
    else:
        assert isinstance(config, RunConfig)
