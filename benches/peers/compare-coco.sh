#!/usr/bin/env bash
# The COCO metric's speed beside pycocotools, faster-coco-eval and hotcoco (Python) on one
# generated val2017-sized workload (5,000 images, ~36.8k boxes of 80 categories, 100 detections
# per image = 500k), in one run on one machine: `ssd eval --detections` as a whole process
# (parsing included) and its evaluation alone, and each Python tool's load + evaluate +
# accumulate + summarize. Prints a table; the numbers go to docs/benchmarks.md.
#
# Run: bash scripts/install-coco-tools.sh && bash benches/peers/compare-coco.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
PY=$SSD_CACHE/coco-venv/bin/python
WORK=${WORK:-$(mktemp -d)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SSD_CACHE/target/default}
cargo build --release -p ssd-cli --quiet
SSD=$CARGO_TARGET_DIR/release/ssd
"$PY" benches/peers/coco_eval.py generate "$WORK"
"$PY" benches/peers/coco_eval.py time "$WORK" "$SSD"
