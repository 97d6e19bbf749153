#!/usr/bin/env bash
# `ssd detect` over 64 VOC-sized JPEGs (500x375), whole process (start, model load, decoding,
# network, post-processing, JSON lines), one configuration after the other on the same threads:
# Burn Flex at batch 1 (the path before batches) and at larger batches, the ONNX Runtime engine
# (CPU, fp32), bf16 through OpenVINO where the CPU has bf16 matrix units, and the peer, a plain
# Python loop with ONNX Runtime on the exported file (benches/peers/onnx_detect.py: PIL decode,
# session.run, no post-processing). SSD300 with random weights: a forward costs the same, and
# --min-score 0.2 keeps the output small. Best of REPEATS (default 2) runs each.
#
#   bash benches/peers/compare-detect.sh [DIR]
#
# Needs scripts/install-onnx-tools.sh (and scripts/install-openvino.sh for the bf16 rows).
set -euo pipefail
cd "$(dirname "$0")/../.."
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
DIR=${1:-$SSD_CACHE/bench-detect}
THREADS=${THREADS:-$(nproc)}
REPEATS=${REPEATS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SSD_CACHE/target/release}
cargo build --release -p ssd-cli
cargo build --release -p ssd-model --example random_weights
SSD=$CARGO_TARGET_DIR/release/ssd
PY=$SSD_CACHE/onnx-venv/bin/python
mkdir -p "$DIR"
[ -f "$DIR/ssd300.bpk" ] ||
  "$CARGO_TARGET_DIR/release/examples/random_weights" ssd300 "$DIR/ssd300.bpk"
"$SSD" export --trained-model "$DIR/ssd300.bpk" --output "$DIR/ssd300.onnx" --overwrite >/dev/null
if [ ! -d "$DIR/images" ]; then
  mkdir -p "$DIR/images"
  "$PY" - "$DIR/images" <<'PY'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(64):
    y, x = np.mgrid[0:375, 0:500]
    a = np.stack([(x * (i + 1)) % 256, (y * 3 + i) % 256, ((x + y) // 2) % 256], -1).astype(np.uint8)
    a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(f"{sys.argv[1]}/{i:03d}.jpg", quality=90)
PY
fi

# Best wall time of REPEATS runs of a command, in seconds.
best() {
  local best=""
  for _ in $(seq "$REPEATS"); do
    rm -f "$DIR/out.jsonl"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$DIR/run.log" 2>&1 || { cat "$DIR/run.log"; exit 1; }
    t1=$(date +%s.%N)
    best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN { t = b - a; if (m == "" || t < m) m = t; printf "%.2f", m }')
  done
  echo "$best"
}

BASE=""
row() {
  local what=$1 seconds=$2
  [ -n "$BASE" ] || BASE=$seconds
  awk -v w="$what" -v s="$seconds" -v b="$BASE" \
    'BEGIN { printf "| %s | %.1f | %.2f | %.2fx |\n", w, s, 64 / s, b / s }'
}

detect() {
  best "$SSD" detect --trained-model "$1" --test-image "$DIR/images" --jsonl "$DIR/out.jsonl" \
    --min-score 0.2 --threads "$THREADS" "${@:2}"
}

echo "ssd detect, SSD300, 64 JPEGs of 500x375, $THREADS threads, $(date -u +%F), best of $REPEATS"
echo
echo "| configuration | seconds | images/s | vs Flex batch 1 |"
echo "|---|---:|---:|---:|"
row "Burn Flex, batch 1" "$(detect "$DIR/ssd300.bpk" --batch-size 1)"
for b in 4 8 16; do
  row "Burn Flex, batch $b" "$(detect "$DIR/ssd300.bpk" --batch-size "$b")"
done
for b in 1 8; do
  row "ONNX Runtime engine, fp32, batch $b" \
    "$(detect "$DIR/ssd300.bpk" --engine onnxruntime --batch-size "$b")"
done
row "ONNX Runtime engine, fp32, batch 8, from the .onnx" \
  "$(detect "$DIR/ssd300.onnx" --engine onnxruntime --batch-size 8)"
for b in 1 8; do
  row "Python loop, ONNX Runtime, batch $b" \
    "$(best "$PY" benches/peers/onnx_detect.py "$DIR/ssd300.onnx" "$DIR/images" \
      --batch-size "$b" --threads "$THREADS")"
done
BF16=""
if grep -qE 'amx_bf16|avx512_bf16' /proc/cpuinfo && [ -d "$SSD_CACHE/openvino-venv" ]; then
  BF16=1
  row "ONNX Runtime engine, OpenVINO fp32, batch 8" \
    "$(detect "$DIR/ssd300.bpk" --engine onnxruntime --provider openvino --batch-size 8)"
  row "ONNX Runtime engine, OpenVINO bf16, batch 8" \
    "$(detect "$DIR/ssd300.bpk" --engine onnxruntime --precision bf16 --batch-size 8)"
else
  echo "(no bf16 rows: this CPU has no AMX/AVX512-BF16, or scripts/install-openvino.sh was not run)"
fi

# What a run costs before its first image (model load, in-memory export, session or OpenVINO
# compilation) and per image after it: the same run on the first image alone, and on all 64.
mkdir -p "$DIR/one"
cp "$DIR/images/000.jpg" "$DIR/one/"
split() {
  local what=$1 one all
  shift
  one=$(best "$SSD" detect --trained-model "$DIR/ssd300.bpk" --test-image "$DIR/one" \
    --jsonl "$DIR/out.jsonl" --min-score 0.2 --threads "$THREADS" "$@")
  all=$(detect "$DIR/ssd300.bpk" "$@")
  awk -v w="$what" -v o="$one" -v a="$all" \
    'BEGIN { p = (a - o) / 63; printf "| %s | %.2f | %.0f | %.2f |\n", w, o, p * 1000, 1 / p }'
}
echo
echo "| batch 8 | 1 image, s | per image after it, ms | images/s after it |"
echo "|---|---:|---:|---:|"
split "ONNX Runtime, CPU fp32" --engine onnxruntime --batch-size 8
if [ -n "$BF16" ]; then
  split "ONNX Runtime, OpenVINO fp32" --engine onnxruntime --provider openvino --batch-size 8
  split "ONNX Runtime, OpenVINO bf16" --engine onnxruntime --precision bf16 --batch-size 8
fi
