"""Stage 3 — judgments: the SQLite store, the resumable teaching loop, pair selection, derived
pairs, teacher ensembles and JSONL import/export."""
