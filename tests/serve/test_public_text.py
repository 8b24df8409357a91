"""``GET /model`` serves a card's text as written: only absolute paths of a machine are cut to
their file name."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from leafiqa.serve.service import public  # noqa: E402

KEPT = [
    "Non-commercial (S-Lab License 1.0; licences/LICENSE-Q-Bench).",
    "../shared/data/clive-dev/data.csv+../shared/data/clive-dev/splits.csv:split_1",
    "see https://github.com/Q-Future/Q-Bench/tree/master and/or the paper",
    "35b3fa2d5838edfa372bde595dfbd26e2b744fc2+dirty",
    "configs/model-clive.yaml",
]
CUT = {
    "/home/alice/private/data.csv": "data.csv",
    "qbench:/srv/data/internlm.json": "qbench:internlm.json",
    "trained on /home/bob/x/train.csv:split_1.": "trained on train.csv:split_1.",
    "from ~/models/studio.safetensors, fine-tuned": "from studio.safetensors, fine-tuned",
    "C:\\Users\\bob\\judgments.json": "judgments.json",
    "\\\\fileserver\\share\\data.csv": "data.csv",
    "(/data/a/b.csv+/data/a/splits.csv:split_2)": "(b.csv+splits.csv:split_2)",
}


@pytest.mark.parametrize("text", KEPT)
def test_text_and_relative_paths_are_kept(text: str) -> None:
    assert public({"card": {"x": [text]}}) == {"card": {"x": [text]}}


@pytest.mark.parametrize(("text", "shown"), CUT.items())
def test_absolute_paths_keep_only_their_name(text: str, shown: str) -> None:
    assert public(text) == shown
