#!/usr/bin/env bash
# The README's labelling loop ("The labelling loop"), end to end on 120 clive-dev photos standing
# in for "your photos": gold images once (the 2 best and 2 worst by lab MOS) → teach (offline
# cue teacher) → distil → three rounds of: select 24 (given every label so far, never a gold
# image) → a rating study served on 127.0.0.1 → three simulated raters (two honest, one
# answering at random; scripts/simulate_raters.py) → export, merged into the one label file →
# calibrate (prints what it kept and the estimate). Then each round's model on the lab MOS of
# the photos no round labelled. No file is written by hand between rounds. Everything goes to
# OUT (default runs/walkthrough).
#
#   bash scripts/walkthrough.sh [OUT]      # needs ../shared (or LEAF_SHARED) and `make setup`
#   (PORT: the study server's port on 127.0.0.1, default 8031; PYTHON: default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/walkthrough}
PORT=${PORT:-8031}
SHARED=${LEAF_SHARED:-../shared}/data/clive-dev
PY=${PYTHON:-.venv/bin/python}
LEAF=("$PY" -m leafiqa)
[ -d "$SHARED" ] || { echo "no $SHARED: this walk-through needs the shared data" >&2; exit 2; }
rm -rf "$OUT"; mkdir -p "$OUT/photos"
OUT=$(cd "$OUT" && pwd)
PHOTOS=$OUT/photos

# 120 photos (the first by name) and their lab MOS (truth.csv: only the simulated raters and the
# final check read it)
$PY - "$SHARED" "$PHOTOS" <<'PYEOF'
import csv, os, sys
from pathlib import Path
shared, photos = Path(sys.argv[1]), Path(sys.argv[2])
rows = sorted(csv.DictReader(open(shared / "data.csv")), key=lambda r: r["name"])[:120]
for r in rows:
    src = (shared / r["name"]) if (shared / r["name"]).exists() else (shared / "images" / r["name"])
    os.symlink(src.resolve(), photos / Path(r["name"]).name)
with open(photos.parent / "truth.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["name", "mos"])
    for r in rows: w.writerow([Path(r["name"]).name, r["mos"]])
PYEOF

# gold: the 2 best and the 2 worst photos by lab MOS (at 5 and at 1), chosen once, before
# round 1 (the one file a person writes: photos whose answer is obvious)
"$PY" - "$OUT" <<'PYEOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = sorted(csv.DictReader(open(out / "truth.csv")), key=lambda r: float(r["mos"]))
with open(out / "photos/gold.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["name", "value"])
    for r, value in zip(rows[-2:] + rows[:2], (5, 5, 1, 1)): w.writerow([r["name"], value])
PYEOF

run() { echo "\$ leaf $*"; "${LEAF[@]}" "$@"; }
run teach --data "$PHOTOS" --teacher cues --store "$OUT/judgments.sqlite"
run distill --data "$PHOTOS" --store "$OUT/judgments.sqlite" --out "$OUT/student.safetensors"

SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null || true' EXIT
for ROUND in 1 2 3; do
  echo "=== round $ROUND"
  LABELS=()  # round 1 has no labels yet; later rounds are chosen given every label so far
  [ "$ROUND" -gt 1 ] && LABELS=(--labels "$PHOTOS/labels.csv")
  run select --data "$PHOTOS" --n 24 "${LABELS[@]}" --exclude "$PHOTOS/gold.csv" \
    --out "$PHOTOS/round$ROUND.csv" --store "$OUT/judgments.sqlite" \
    --model "$OUT/student.safetensors"
  run rate create "$OUT/study$ROUND" --images "$PHOTOS/round$ROUND.csv" \
    --gold "$PHOTOS/gold.csv" --raters 3 --repeats 3 --title "Photo quality — round $ROUND" \
    --base-url "http://127.0.0.1:$PORT" --allow-root "$SHARED" | tee "$OUT/links$ROUND.txt"
  "${LEAF[@]}" rate serve "$OUT/study$ROUND" --port "$PORT" > "$OUT/serve$ROUND.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 60); do
    "$PY" -c "import httpx; httpx.get('http://127.0.0.1:$PORT/health', timeout=1)" \
      2>/dev/null && break
    sleep 0.5
  done
  mapfile -t LINKS < <(grep -o "http://127.0.0.1:$PORT/r/[A-Za-z0-9_-]*" "$OUT/links$ROUND.txt")
  PYTHONPATH=src "$PY" scripts/simulate_raters.py "$OUT/study$ROUND" "${LINKS[@]}" \
    --truth "$OUT/truth.csv" --careless 1
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
  run rate status "$OUT/study$ROUND"
  run ratings export "$OUT/study$ROUND" --out "$PHOTOS/labels.csv"
  run calibrate "$OUT/student.safetensors" --labels "$PHOTOS/labels.csv" --pool "$PHOTOS" \
    --selection variance --store "$OUT/judgments.sqlite" --out "$OUT/model-r$ROUND.safetensors"
done
echo "=== after three rounds"
# the same 72 labels taken as a random draw (no --selection): the estimate the README compares
run calibrate "$OUT/student.safetensors" --labels "$PHOTOS/labels.csv" --pool "$PHOTOS" \
  --out "$OUT/model-r3-as-random.safetensors"
# the photos no round labelled (nor gold), with their lab MOS: what the estimates are checked
# against; and the exported MOS against the lab MOS of the same photos
"$PY" - "$OUT" <<'PYEOF'
import csv, sys
from collections import Counter
from pathlib import Path
from scipy.stats import spearmanr
out = Path(sys.argv[1])
exported = list(csv.DictReader(open(out / "photos/labels.csv")))
print("labels.csv: " + ", ".join(f"{k} {v}" for k, v in Counter(r["round"] for r in exported).items()))
used = {r["name"] for r in exported} | {r["name"] for r in csv.DictReader(open(out / "photos/gold.csv"))}
rows = [r for r in csv.DictReader(open(out / "truth.csv")) if r["name"] not in used]
with open(out / "photos/heldout.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["name", "mos"]); [w.writerow([r["name"], r["mos"]]) for r in rows]
print(f"heldout.csv: {len(rows)} photos")
lab = {r["name"]: float(r["mos"]) for r in csv.DictReader(open(out / "truth.csv"))}
for study in sorted({r["round"] for r in exported}) + ["all"]:
    mine = [r for r in exported if study in ("all", r["round"])]
    agreement = spearmanr([float(r["mos"]) for r in mine], [lab[r["name"]] for r in mine])
    print(f"exported MOS vs lab MOS, {study} ({len(mine)} images): SRCC {agreement.statistic:.3f}")
PYEOF
for ROUND in 1 2 3; do
  run evaluate "$OUT/model-r$ROUND.safetensors" --data "$PHOTOS/heldout.csv" --subset '' --quiet
done
