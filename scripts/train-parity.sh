#!/usr/bin/env bash
# Whole-run training parity with PyTorch: `ssd train` and a PyTorch trainer of the same recipe
# (tools/train_reference.py) train the small preset and the reduced SSD300
# (tests/fixtures/reduced_ssd300.json) from the same initial weights on exactly the same batches
# (`ssd train --dump-batches`: the augmented, normalised images and their encoded targets) of a
# synthetic dataset, with the whole recipe switched on: augmentation, linear warm-up, two step
# decays, the Caffe bias group, momentum, weight decay, global-norm clipping, hard-negative mining
# (and batch norm, in the small preset). The data is `ssd synthetic --sparse` (scenes pinned for
# comparisons over versions, not the quickstart's, which may change). Each network is trained
#
#   - in float64 on both sides: the two runs must agree to 1e-9 at every iteration and in every
#     final weight (with the momentum and weight decay Burn's SGD holds in float32 given to
#     PyTorch too; with PyTorch's exact ones the difference is printed);
#   - in float32, as users train: the runs drift apart by float rounding, and must stay as close
#     to PyTorch's float64 run as PyTorch's own float32 run does; both final models are scored
#     by `ssd eval` (PyTorch's through its .pth and `--model`), mAPs within 0.01.
#
# tools/train_parity.py prints one line per network and fails beyond the tolerances it states.
#
#   bash scripts/train-parity.sh [ITERATIONS]      (default 300; CI runs a shorter version)
#
# Environment: SSD_BIN (the `ssd` binary; default: built with `cargo build -p ssd-cli` into
# CARGO_TARGET_DIR or ./target), SSD_PYTHON (Python with torch and numpy; default the tools
# venv, scripts/install-tools-venv.sh), PARITY_DIR (work folder, default
# $SSD_CACHE/train-parity; ~2 GB of dumped batches at 300 iterations, removed at the end unless
# KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=${1:-300}
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
PARITY_DIR=${PARITY_DIR:-$SSD_CACHE/train-parity}
PYTHON=${SSD_PYTHON:-$SSD_CACHE/tools-venv/bin/python}
if [ -z "${SSD_BIN:-}" ]; then
  cargo build --quiet -p ssd-cli
  SSD_BIN=${CARGO_TARGET_DIR:-target}/debug/ssd
fi
if ! "$PYTHON" -c "import torch, numpy" 2>/dev/null; then
  echo "train-parity: $PYTHON has no torch: run scripts/install-tools-venv.sh or set SSD_PYTHON" >&2
  exit 2
fi

rm -rf "$PARITY_DIR"
mkdir -p "$PARITY_DIR"
DATA=$PARITY_DIR/data
"$SSD_BIN" synthetic "$DATA" --sparse --train-images 400 --test-images 100 --seed 7

# The recipe: the paper's optimizer (SGD, momentum 0.9, weight decay 5e-4, Caffe bias group), a
# warm-up over the first sixth, x0.1 at two thirds and five sixths, clipping at 5, the SSD
# augmentation.
WARMUP=$((ITERATIONS / 6))
DECAY=$((ITERATIONS * 2 / 3)),$((ITERATIONS * 5 / 6))
status=0
for NET in small reduced_ssd300; do
  case $NET in
    small) MODEL=small BATCH=8 LR=0.01 ;;
    reduced_ssd300) MODEL=tests/fixtures/reduced_ssd300.json BATCH=4 LR=0.005 ;;
  esac
  W=$PARITY_DIR/$NET
  mkdir -p "$W"
  train() {
    "$SSD_BIN" train --model "$MODEL" --dataroot "$DATA" --iterations "$ITERATIONS" \
      --batch-size "$BATCH" --lr "$LR" --warmup "$WARMUP" --lr-decay "$DECAY" --clip-grad 5 \
      --seed 3 --workers 2 --save-every "$ITERATIONS" --log-every "$ITERATIONS" \
      --model-save-name "$NET" "$@" >/dev/null
  }
  echo "== $NET: ssd train, float32 and float64 ($ITERATIONS iterations)"
  train --results "$W/ours32" --dump-batches "$W/dump32"
  train --results "$W/ours64" --dump-batches "$W/dump64" --precision fp64
  echo "== $NET: tools/train_reference.py on the same batches"
  "$PYTHON" tools/train_reference.py "$W/dump32" "$W/ref32"
  "$PYTHON" tools/train_reference.py "$W/dump32" "$W/ref64" --dtype float64
  "$PYTHON" tools/train_reference.py "$W/dump64" "$W/ref64burn" --dtype float64 --burn-constants
  "$PYTHON" tools/train_reference.py "$W/dump64" "$W/ref64exact" --dtype float64
  echo "== $NET: ssd eval (VOC07 mAP on the synthetic test set)"
  evaluate() {
    "$SSD_BIN" eval --dataroot "$DATA" --datanames test --json --overwrite \
      --detections "$W/det_$1" --trained-model "${@:2}" | sed -n 's/.*"map":\([-0-9.e]*\).*/\1/p'
  }
  MAP_OURS=$(evaluate ours "$W/ours32/weights/$NET.bpk")
  MAP_REF32=$(evaluate ref32 "$W/ref32/final.pth" --model "$MODEL" --classes "$DATA/classes.txt")
  MAP_REF64=$(evaluate ref64 "$W/ref64/final.pth" --model "$MODEL" --classes "$DATA/classes.txt")
  "$PYTHON" tools/train_parity.py "$W" "$NET" "$ITERATIONS" \
    --maps "$MAP_OURS,$MAP_REF32,$MAP_REF64" || status=1
  if [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$W"/dump32 "$W"/dump64
  fi
done
exit $status
