#!/usr/bin/env bash
# Frozen vs fully fine-tuned student at 0 and 10 % labels on AGIQA-3K and clive-dev, on one GPU
# in under 8 minutes (benchmarks/gpu_check.py has the options). `--smoke`: the CPU-sized
# version CI runs (a tiny random ConvNeXt on 24 synthetic images, well under a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# the GPU machine has no internet: never wait on the hub
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec timeout "${LEAF_GPU_CHECK_TIMEOUT:-480}" "$PYTHON" benchmarks/gpu_check.py "$@"
