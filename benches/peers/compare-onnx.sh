#!/usr/bin/env bash
# SSD300 inference on this CPU three ways, one after the other with the same threads: Flex
# (benches/model.rs's `ssd300_flex/forward_batch*`), ONNX Runtime on the file `ssd export` writes
# for the same network, and PyTorch eager (benches/peers/model.py, forward only). The SSD300 is
# the full-size PyTorch fixture (`python tools/make_model_fixtures.py --full DIR`, its model.pth,
# VGG16 widths, 21 classes). Needs scripts/install-onnx-tools.sh and scripts/install-tools-venv.sh.
#
#   bash benches/peers/compare-onnx.sh DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?usage: compare-onnx.sh FULL_FIXTURE_DIR}
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
THREADS=${THREADS:-$(nproc)}
TARGET=${CARGO_TARGET_DIR:-$SSD_CACHE/target/default}
cargo build -p ssd-cli
"$TARGET/debug/ssd" export --trained-model "$DIR/model.pth" --output "$DIR/ssd300.onnx" --overwrite
echo "onnxruntime ($THREADS threads, median seconds):"
"$SSD_CACHE/onnx-venv/bin/python" benches/peers/onnx_model.py "$DIR/ssd300.onnx" --threads "$THREADS"
echo "pytorch ($THREADS threads, median seconds):"
"$SSD_CACHE/tools-venv/bin/python" benches/peers/model.py --threads "$THREADS" --forward-only
echo "flex (criterion, $THREADS threads):"
cargo bench --bench model --no-run
RAYON_NUM_THREADS="$THREADS" cargo bench --bench model -- --noplot ssd300_flex/forward 2>&1 |
  grep -E "^ssd300|time:"
