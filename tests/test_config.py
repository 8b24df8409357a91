"""Typed config (issue 13 item 7, issue 15 item 2): wrong types are one clear error naming the
field, reading a YAML imports no stage, the schema documents every key."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
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
    from leafiqa.experiments.labels_only import CalibrationConfig as StageCalibration
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
# every counter-example hypothesis ever found stays here, run on every run
@example({"data": {"\n": None}})  # was a two-line error: x.yaml: data.\n: unknown key
@example({"labels": {"budget": 1e300}})  # finite but overflowing
@example({"labels": {"budget": "1e400"}})  # reads as inf
def test_any_yaml_mapping_is_a_config_or_one_config_error(values: dict) -> None:
    try:
        config = build_config(values, "x.yaml")
    except ConfigError as error:
        assert str(error).startswith("x.yaml: ") and "\n" not in str(error)
    else:
        assert isinstance(config, RunConfig)


@pytest.mark.parametrize(("text", "field"), [
    ("labels:\n  budget: 1e400\n", "labels.budget"),
    ("labels:\n  budget: .nan\n", "labels.budget"),
    ("distill:\n  lr: .inf\n", "distill.lr"),
    ("distill:\n  steps: 100000000000000000000000\n", "distill.steps"),
    ("labels:\n  budget: 1.0e+300\n", "labels.budget"),
    ("calibration:\n  max_rank_pairs: -99999999999999\n", "calibration.max_rank_pairs"),
    ("data:\n  holdout_seed: 1.0e+40\n", "data.holdout_seed"),
])
def test_numbers_that_overflow_are_one_config_error(tmp_path: Path, text: str,
                                                    field: str) -> None:
    """``labels.budget: 1e400`` passed ``leaf config`` and overflowed in ``leaf run``."""
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}: ") and "\n" not in message


def test_every_numeric_field_refuses_inf_and_nan() -> None:
    import dataclasses

    for section, kind in (("data", "DataConfig"), ("student", "StudentConfig"),
                          ("distill", "DistillConfig"), ("calibration", "CalibrationConfig"),
                          ("labels", "LabelConfig"), ("teacher", "TeacherConfig")):
        cls = getattr(__import__("leafiqa.config", fromlist=[kind]), kind)
        for item in dataclasses.fields(cls):
            if "float" not in str(item.type) and "int" not in str(item.type):
                continue
            for bad in (float("inf"), float("nan"), 1e30):
                with pytest.raises(ConfigError, match=rf"^x.yaml: {section}.{item.name}: "):
                    build_config({section: {item.name: bad}}, "x.yaml")


def test_names_in_errors_are_quoted_so_the_error_stays_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"data": {"\n": None}}, "x.yaml")
    assert str(caught.value) == "x.yaml: data.'\\n': unknown key"
    with pytest.raises(ConfigError) as caught:
        build_config({"labels": {"budget": "ten"}}, "bad\nname.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("'bad\\nname.yaml': ")


def test_results_config_has_no_url_credentials() -> None:
    config = build_config({"teacher": {"spec": "openai", "options": {
        "url": "https://alice:pa55word-xyz@example.org/v1"}}})
    text = json.dumps(config_to_dict(config))
    assert "pa55word-xyz" not in text and "alice" not in text and "example.org/v1" in text
