"""Export a judgment store to JSONL (the record format of ``teachers.records``), CSV or
Parquet, and import JSONL into a store."""

from __future__ import annotations

import json
from pathlib import Path

from leafiqa.errors import ConfigError
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.records import pair_record, point_record, read_jsonl


def export_store(store: JudgmentStore, out: str | Path) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        names = store.image_names()
        with out.open("w") as handle:
            for teacher_id, version, _, _ in store.teachers():
                for judgment in store.points(teacher_id, version).values():
                    record = point_record(judgment, names.get(judgment.image_key, ""))
                    handle.write(json.dumps(record) + "\n")
                for pair in store.pairs(teacher_id, version):
                    handle.write(json.dumps(pair_record(pair)) + "\n")
        return [out]
    if out.suffix not in {".csv", ".parquet"}:
        raise ConfigError(f"{out}: export to .jsonl, .csv or .parquet")
    import pandas as pd

    written = []
    for table in ("point_judgments", "pair_judgments", "images"):
        columns, rows = store.table(table)
        target = out.with_name(f"{out.stem}-{table}{out.suffix}")
        frame = pd.DataFrame(rows, columns=columns)
        if out.suffix == ".csv":
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
        written.append(target)
    return written


def import_jsonl(store: JudgmentStore, path: str | Path) -> dict[str, int]:
    points, pairs = read_jsonl(path)
    for point in points:
        store.put_point(point)
    store.put_pairs(pairs)
    return {"point": len(points), "pair": len(pairs)}
