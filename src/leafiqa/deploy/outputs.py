"""Where ``leaf score`` writes: one row per input image (``path``, ``score``, ``error``), a
failed image keeps its row with an empty score and the reason. The format follows the file's
extension; CSV is written as it goes, JSON and Parquet when scoring ends."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}
COLUMNS = ["path", "score", "error"]


def output_format(path: Path) -> str:
    """The format for an output file name; anything else is refused before scoring starts."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"--out {path}: unknown output format '{path.suffix or '(none)'}'; "
                         f"use one of {sorted(FORMATS)}") from None


@dataclass
class ScoreWriter:
    path: Path
    format: str = ""
    scored: int = 0
    failed: int = 0
    _rows: list[dict] = field(default_factory=list)
    _handle: IO[str] | None = None
    _csv: Any = None  # a csv.writer (its type is private to the csv module)

    def __post_init__(self) -> None:
        self.format = self.format or output_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "csv":
            self._handle = self.path.open("w", newline="")
            self._csv = csv.writer(self._handle)
            self._csv.writerow(COLUMNS)

    def add(self, path: Path | str, score: float | None, error: str = "") -> None:
        if score is None or (isinstance(score, float) and math.isnan(score)):
            score, self.failed = None, self.failed + 1
        else:
            self.scored += 1
        if self._csv is not None:
            self._csv.writerow([str(path), "" if score is None else f"{score:.6f}", error])
        else:
            self._rows.append({"path": str(path), "score": score, "error": error or None})

    def flush(self) -> None:
        if self._handle:
            self._handle.flush()

    def close(self) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None
        elif self.format == "json":
            self.path.write_text(json.dumps(self._rows, indent=1))
        elif self.format == "parquet":
            import pandas as pd

            frame = pd.DataFrame(self._rows, columns=COLUMNS)
            frame["score"] = frame["score"].astype("float64")
            frame["error"] = frame["error"].astype("string")
            frame.to_parquet(self.path)

    def __enter__(self) -> ScoreWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
