"""Rate a served study (``leaf rate serve``) with simulated raters, for demos and the README's
walk-through when no people are at hand: each link answers from a known MOS (a CSV
``name,mos``) with its own bias and noise on the ACR scale, or at random (``--careless``).

    PYTHONPATH=src python scripts/simulate_raters.py STUDY URL1 URL2 … --truth data.csv
        [--mos-range 0 100] [--careless 1]

The study folder is read only to look up which image a step shows (a real rater sees it). A
429 answer (the server's rate limit) is waited out as its ``Retry-After`` says, at most
``MAX_RETRIES`` times per request."""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import httpx
import numpy as np

from leafiqa.labelling.study import Study

MAX_RETRIES = 30
MAX_WAIT = 10.0  # seconds, whatever Retry-After says


def retry_after(reply: httpx.Response) -> float:
    """The wait a 429 asks for: ``Retry-After`` in seconds (1 when absent or not a number),
    at most ``MAX_WAIT``."""
    try:
        return min(MAX_WAIT, max(0.0, float(reply.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def send(client: httpx.Client, method: str, url: str, body: dict | None = None
         ) -> httpx.Response:
    """One request, repeated after the wait a 429 asks for (``MAX_RETRIES`` at most); any other
    error status raises."""
    for _ in range(MAX_RETRIES):
        reply = client.request(method, url, json=body)
        if reply.status_code != 429:
            reply.raise_for_status()
            return reply
        time.sleep(retry_after(reply))
    raise SystemExit(f"{url.split('/r/')[0]}: still rate-limited after {MAX_RETRIES} tries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("links", nargs="+", help="rater links http://127.0.0.1:PORT/r/TOKEN")
    parser.add_argument("--truth", type=Path, required=True, help="CSV name,mos")
    parser.add_argument("--mos-range", type=float, nargs=2, default=(0.0, 100.0))
    parser.add_argument("--careless", type=int, default=0, help="the last N links answer at "
                                                                "random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with args.truth.open(newline="") as handle:
        truth = {Path(row["name"]).name: float(row["mos"]) for row in csv.DictReader(handle)}
    low, high = args.mos_range
    study = Study(args.study)
    rng = np.random.default_rng(args.seed)
    client = httpx.Client(timeout=30)
    for k, link in enumerate(args.links):
        base, token = link.rstrip("/").rsplit("/r/", 1)
        api = f"{base}/api/r/{token}"
        careless = k >= len(args.links) - args.careless
        bias, noise = rng.normal(0, 0.3), rng.uniform(0.3, 0.6)
        rater = study.rater_for_token(token)
        if rater is None:
            raise SystemExit(f"{link}: not a rater of {args.study}")
        state = send(client, "GET", api).json()
        for step in range(state["done"], state["total"]):
            name = Path(study.image(study.step(rater.id, step).image_id).name).name
            if careless:
                value = int(rng.integers(1, 6))
            else:
                level = 1 + 4 * (truth[name] - low) / (high - low)
                value = int(np.clip(np.round(level + bias + rng.normal(0, noise)), 1, 5))
            send(client, "POST", f"{api}/rating", {"step": step, "value": value})
        print(f"{rater.label}: {state['total']} ratings ({'careless' if careless else 'honest'})")


if __name__ == "__main__":
    main()
