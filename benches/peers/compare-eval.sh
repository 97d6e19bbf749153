#!/usr/bin/env bash
# Runs the evaluation bench (benches/eval.rs) and its Python peer (benches/peers/voc_eval.py) on
# the same generated VOC07-test-sized set, one after the other. Needs numpy for $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SSD_BENCH_EVAL_DATA="${SSD_BENCH_EVAL_DATA:-${TMPDIR:-/tmp}/ssd-bench-voc07-eval}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import numpy" 2>/dev/null || {
    echo "compare-eval.sh: $PYTHON lacks numpy: pip install numpy" >&2
    exit 1
}
cargo bench --bench eval --no-run
cargo bench --bench eval -- --noplot 2>&1 | grep -E "^eval_voc07|time:|detections"
echo "python peer (reading the result files + evaluating, ground truth parsed beforehand):"
"$PYTHON" benches/peers/voc_eval.py "$SSD_BENCH_EVAL_DATA" "$SSD_BENCH_EVAL_DATA/results" --set test
