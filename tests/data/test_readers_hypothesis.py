"""Readers on arbitrary files (issue 13): a manifest CSV or a judgment JSONL of any content is
either read or refused with one ``DataError`` naming the file — never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from leafiqa.data.manifest import DataError
from leafiqa.data.readers import read_plain_csv
from leafiqa.teachers.records import read_jsonl

cells = st.one_of(st.sampled_from(["a.jpg", "b.png", "", "nan", "inf", "-1", "3.5", "x",
                                   '"q,"', "1e400", "name", "mos"]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6))
rows = st.lists(st.lists(cells, min_size=1, max_size=4), max_size=6)
headers = st.lists(st.sampled_from(["name", "mos", "std", "split", "path", "x"]), min_size=1,
                   max_size=4)


@given(header=headers, body=rows)
@settings(max_examples=200, deadline=None)
def test_any_manifest_csv_is_read_or_one_data_error(header: list[str],
                                                    body: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ("a.jpg", "b.png"):
            (root / name).write_bytes(b"x")
        path = root / "m.csv"
        path.write_text("\n".join(",".join(row) for row in [header, *body]) + "\n")
        try:
            manifest = read_plain_csv(path)
        except DataError as error:
            assert "m.csv" in str(error)
        else:
            assert len(manifest) > 0 and all(item.path.is_file() for item in manifest)


@given(st.binary(max_size=300) | st.lists(st.text(max_size=40), max_size=5).map(
    lambda lines: "\n".join(lines).encode()))
@settings(max_examples=200, deadline=None)
def test_any_jsonl_is_read_or_one_data_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "j.jsonl"
        path.write_bytes(data)
        try:
            read_jsonl(path)
        except DataError as error:
            assert "j.jsonl" in str(error)
