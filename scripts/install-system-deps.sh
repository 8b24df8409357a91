#!/usr/bin/env bash
# Debian packages the project uses, installed when we can (root + apt); otherwise say how, and
# the tests that need them skip:
# - opencv-data: OpenCV's BRISQUE model files for the offline cue teacher;
# - chromium + chromium-driver: the headless browser the page test of `leaf serve` drives.
set -u
have_brisque() {
  for dir in /usr/share/opencv4/quality /usr/share/opencv/quality "${LEAF_BRISQUE_DIR:-/nonexistent}"; do
    [ -f "$dir/brisque_model_live.yml" ] && return 0
  done
  return 1
}
missing=()
have_brisque || missing+=(opencv-data)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1)) &&
   { echo "installed ${missing[*]}"; exit 0; }
fi
echo "note: missing Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'" \
     "(BRISQUE files: or set LEAF_BRISQUE_DIR); tests that need them skip" >&2
exit 0
