"""Judgments per second from an OpenAI-compatible server at concurrency 1, 8 and 32.

The server is LEAF's mock MLLM on 127.0.0.1 with a fixed answer latency (default 50 ms, like a
fast GPU server), so the figure measures LEAF's client: request building, image encoding,
concurrency, parsing and storing each judgment as it arrives.

    python benchmarks/bench_teacher_concurrency.py [--images 96] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from leafiqa.data import read_agiqa3k
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings
from leafiqa.testing.mock_teacher import MockBehaviour, ServerThread, create_mock_app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agiqa3k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    manifest = read_agiqa3k(args.data, split=None).spread(args.images)
    print(f"{len(manifest)} AGIQA-3K images, mock server latency {args.latency * 1000:.0f} ms")
    print(f"{'concurrency':>11} {'judgments/s':>12} {'seconds':>8} {'speed-up':>9}")
    baseline = None
    for concurrency in (1, 8, 32):
        behaviour = MockBehaviour(latency=args.latency)
        with ServerThread(create_mock_app(behaviour)) as server:
            teacher = OpenAITeacher(TeacherSettings(url=server.url + "/v1", model="mock",
                                                    concurrency=concurrency))
            store = JudgmentStore()
            start = time.perf_counter()
            report = teach(teacher, manifest, store, progress=False)
            seconds = time.perf_counter() - start
        rate = report.points_new / seconds
        baseline = baseline or rate
        print(f"{concurrency:>11} {rate:>12.1f} {seconds:>8.2f} {rate / baseline:>8.1f}×")


if __name__ == "__main__":
    main()
