#!/usr/bin/env bash
# Run the full test suite N times in a row on a fresh clone of this repository's HEAD.
#   scripts/repeat_tests.sh NAME N     (start several NAMEs side by side to load the cores)
# Needs the project's .venv (make setup); the clone is made beside the repository, so its
# ../shared (the tests on real data) is the repository's. One line per run: $LOGS/summary.txt.
set -u
NAME=$1; N=$2
REPO=$(cd "$(dirname "$0")/.." && pwd)
PARENT=$(dirname "$REPO")                # the clone sits beside the repo, so ../shared is shared
CLONE=$PARENT/loop-$NAME
LOGS=${LOGS:-$PARENT/logs}
mkdir -p "$LOGS"
rm -rf "$CLONE"; git clone -q "$REPO" "$CLONE"; ln -s "$REPO/.venv" "$CLONE/.venv"
cd "$CLONE"; COMMIT=$(git rev-parse --short HEAD)
for i in $(seq 1 "$N"); do
  start=$(date +%s); started=$(date -u +%H:%M:%S)
  PYTHONPATH="$CLONE/src" .venv/bin/python -m pytest -q -p no:cacheprovider -rf \
    > "$LOGS/loop-$NAME-$i.txt" 2>&1
  rc=$?; took=$(( $(date +%s) - start ))
  echo "$NAME run $i commit $COMMIT start $started rc $rc $((took / 60))m$((took % 60))s" \
    "$(tail -1 "$LOGS/loop-$NAME-$i.txt")" >> "$LOGS/summary.txt"
done
