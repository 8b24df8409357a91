from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leafiqa.config import load_config
from leafiqa.experiments.workspace import gather_judgments, label_count, load_manifest
from leafiqa.judgments.runner import hash_manifest
from leafiqa.judgments.store import JudgmentStore
from tests.conftest import REPO, write_recorded_dataset


def test_a_shared_store_gives_each_run_only_its_own_planned_pairs(tmp_path: Path) -> None:
    csv, recorded = write_recorded_dataset(tmp_path, 60, mos=lambda i: round(i / 20, 2),
                                           logit_good=lambda i: i / 10)
    config = load_config(REPO / "configs" / "demo.yaml", {
        "data.kind": "csv", "data.path": str(csv), "data.split": None,
        "teacher.spec": f"qbench:{recorded}", "teacher.fallback": None,
        "teacher.pairs_per_image": 3, "output": str(tmp_path / "run")})
    manifest = load_manifest(config)
    keys = hash_manifest(manifest)

    def pair_keys(view) -> set[tuple[str, str]]:  # noqa: ANN001
        return {(p.key_a, p.key_b) for p in view.pairs}

    with JudgmentStore(tmp_path / "j.sqlite") as store:
        first = gather_judgments(config, manifest, keys, np.arange(30), store, progress=False)
        # a run on an overlapping image set (another split) plans other pairs among them
        other = gather_judgments(config, manifest, keys, np.arange(60), store, progress=False)
        again = gather_judgments(config, manifest, keys, np.arange(30), store, progress=False)
    half = set(keys[:30])
    assert first.pairs and all({a, b} <= half for a, b in pair_keys(first))
    assert any({a, b} <= half for a, b in pair_keys(other) - pair_keys(first))
    assert pair_keys(again) == pair_keys(first)  # the store's extra pairs are not used


def test_label_budget_fraction_or_count() -> None:
    assert label_count(0.1, 2386) == 239
    assert label_count(1.0, 2386) == 2386
    assert label_count(50, 2386) == 50
    assert label_count(0, 2386) == 0


def test_input_size_is_one_size_or_a_pyramid() -> None:
    pyramid = load_config(REPO / "configs" / "demo.yaml", {"student.input_size": [224, 512]})
    assert pyramid.student.input_size == [224, 512]
    with pytest.raises(ValueError, match="student.input_size"):
        load_config(REPO / "configs" / "demo.yaml", {"student.input_size": "224,512"})


def test_cli_reads_pyramid_sizes() -> None:
    from leafiqa.cli.base import parse_sizes

    assert parse_sizes("384") == (384,)
    assert parse_sizes("224,512") == (224, 512)
    with pytest.raises(ValueError, match="--input-size"):
        parse_sizes("big")


def test_cli_overrides_are_read_as_yaml() -> None:
    from leafiqa.cli.base import parse_overrides

    assert parse_overrides(["student.input_size=[224, 512]", "teacher.fallback=null"]) == {
        "student.input_size": [224, 512], "teacher.fallback": None}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["student.input_size"])
