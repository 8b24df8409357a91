#!/usr/bin/env bash
# The offline cue teacher needs OpenCV's BRISQUE model files, shipped by Debian's opencv-data.
# Installed when we can (root + apt); otherwise say how, and the cue teacher's tests skip.
set -u
for dir in /usr/share/opencv4/quality /usr/share/opencv/quality "${LEAF_BRISQUE_DIR:-/nonexistent}"; do
  [ -f "$dir/brisque_model_live.yml" ] && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -qq opencv-data >/dev/null 2>&1 ||
   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq opencv-data >/dev/null 2>&1)) &&
   { echo "installed opencv-data (BRISQUE model files)"; exit 0; }
fi
echo "note: BRISQUE model files not found; for the offline 'cues' teacher run" \
     "'sudo apt-get install opencv-data' or set LEAF_BRISQUE_DIR" >&2
exit 0
