#!/usr/bin/env bash
# The README's labelling loop ("The labelling loop"), end to end on 120 clive-dev photos standing
# in for "your photos": teach (offline cue teacher) → distil → select 24 → a rating study served
# on 127.0.0.1 → three simulated raters (two honest, one answering at random;
# scripts/simulate_raters.py) → export → calibrate (prints the estimate) → evaluate on the other
# photos' lab MOS → select round 2. Everything goes to OUT (default runs/walkthrough).
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

run() { echo "\$ leaf $*"; "${LEAF[@]}" "$@"; }
run teach --data "$PHOTOS" --teacher cues --store "$OUT/judgments.sqlite"
run distill --data "$PHOTOS" --store "$OUT/judgments.sqlite" --out "$OUT/student.safetensors"
run select "$PHOTOS" --n 24 --out "$PHOTOS/round1.csv" --store "$OUT/judgments.sqlite" \
  --model "$OUT/student.safetensors"
# gold: the 2 best and the 2 worst photos by lab MOS among those not picked (at 5 and at 1)
"$PY" - "$OUT" <<'PYEOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
picked = {Path(r["name"]).name for r in csv.DictReader(open(out / "photos/round1.csv"))}
rest = sorted((r for r in csv.DictReader(open(out / "truth.csv")) if r["name"] not in picked),
              key=lambda r: float(r["mos"]))
with open(out / "photos/gold.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["name", "value"])
    for r, value in zip(rest[-2:] + rest[:2], (5, 5, 1, 1)): w.writerow([r["name"], value])
PYEOF
# the photos are links into the shared data: the study may serve files there (--allow-root)
run rate create "$OUT/study1" --images "$PHOTOS/round1.csv" --gold "$PHOTOS/gold.csv" --raters 3 \
  --repeats 3 --title "Photo quality — round 1" --base-url "http://127.0.0.1:$PORT" \
  --allow-root "$SHARED" | tee "$OUT/links.txt"
"${LEAF[@]}" rate serve "$OUT/study1" --port "$PORT" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  "$PY" -c "import httpx,sys; httpx.get('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null && break
  sleep 0.5
done
mapfile -t LINKS < <(grep -o "http://127.0.0.1:$PORT/r/[A-Za-z0-9_-]*" "$OUT/links.txt")
PYTHONPATH=src "$PY" scripts/simulate_raters.py "$OUT/study1" "${LINKS[@]}" \
  --truth "$OUT/truth.csv" --careless 1
run rate status "$OUT/study1"
run ratings export "$OUT/study1" --out "$PHOTOS/labels.csv"
run calibrate "$OUT/student.safetensors" --labels "$PHOTOS/labels.csv" --budget 24 \
  --pool "$PHOTOS" --selection variance --store "$OUT/judgments.sqlite" \
  --out "$OUT/model-r1.safetensors"
# the same labels taken as a random draw (no --selection): the estimate the README compares
run calibrate "$OUT/student.safetensors" --labels "$PHOTOS/labels.csv" --budget 24 \
  --pool "$PHOTOS" --out "$OUT/model-r1-as-random.safetensors"
# the photos neither rated nor gold, with their lab MOS: what the estimate is checked against
"$PY" - "$OUT" <<'PYEOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
used = {r["name"] for r in csv.DictReader(open(out / "photos/labels.csv"))}
used |= {r["name"] for r in csv.DictReader(open(out / "photos/gold.csv"))}
rows = [r for r in csv.DictReader(open(out / "truth.csv")) if r["name"] not in used]
with open(out / "photos/heldout.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["name", "mos"]); [w.writerow([r["name"], r["mos"]]) for r in rows]
print(f"heldout.csv: {len(rows)} photos")
from scipy.stats import spearmanr
lab = {r["name"]: float(r["mos"]) for r in csv.DictReader(open(out / "truth.csv"))}
exported = list(csv.DictReader(open(out / "photos/labels.csv")))
agreement = spearmanr([float(r["mos"]) for r in exported], [lab[r["name"]] for r in exported])
print(f"exported MOS vs lab MOS of the same {len(exported)} images: SRCC "
      f"{agreement.statistic:.3f}")
PYEOF
run evaluate "$OUT/model-r1.safetensors" --data "$PHOTOS/heldout.csv" --subset ''
run select "$PHOTOS" --n 24 --labels "$PHOTOS/labels.csv" --out "$PHOTOS/round2.csv" \
  --store "$OUT/judgments.sqlite" --model "$OUT/student.safetensors"
