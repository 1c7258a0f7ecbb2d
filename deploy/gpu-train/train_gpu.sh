#!/usr/bin/env bash
# Fine-tune on a bare GPU machine (Python with torch, numpy, Pillow; no kraken, no network).
#   bash deploy/gpu-train/train_gpu.sh BUNDLE OUT [MINUTES] [DEVICE]
# BUNDLE comes from `make train-gpu-bundle` (wheels + compact line dataset + base model).
set -euo pipefail
BUNDLE=${1:?bundle folder}; OUT=${2:?output folder}; MINUTES=${3:-8}; DEVICE=${4:-cuda}
PY=${PYTHON:-python3}
HERE="$(cd "$(dirname "$0")" && pwd)"
SITE="$OUT/.site"
mkdir -p "$OUT"
# offline, without dependencies: only Kraken's network code and safetensors are used
"$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$BUNDLE"/wheels/*.whl
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$HERE/train_gpu.py" "$BUNDLE" "$OUT" \
  --minutes "$MINUTES" --device "$DEVICE" ${TRAIN_GPU_ARGS:-}
