#!/usr/bin/env bash
# Runs the data bench (benches/data.rs) and its Python/OpenCV peer (benches/peers/augment.py) on
# the same JPEGs, one after the other, both pinned to one core. Needs numpy and
# opencv-python-headless for $PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
export SSD_BENCH_DATA="${SSD_BENCH_DATA:-${TMPDIR:-/tmp}/ssd-bench-voc500x375}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import cv2, numpy" 2>/dev/null || {
    echo "compare-data.sh: $PYTHON lacks numpy/OpenCV: pip install numpy opencv-python-headless" >&2
    exit 1
}
cargo bench --bench data --no-run
taskset -c 0 cargo bench --bench data -- --noplot 2>&1 | grep -E "^data_per_image|time:"
echo "python/opencv peer:"
taskset -c 0 "$PYTHON" benches/peers/augment.py "$SSD_BENCH_DATA" --seconds 15
