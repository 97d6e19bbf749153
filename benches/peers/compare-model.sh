#!/usr/bin/env bash
# Runs the model bench (benches/model.rs, every backend compiled in by $FEATURES, default flex) and
# its PyTorch peer (benches/peers/model.py) one after the other, with the same number of threads.
# Needs torch for $PYTHON (default python3); for the tch backend, source scripts/libtorch-env.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
FEATURES="${FEATURES:-flex}"
THREADS="${THREADS:-$(nproc)}"
"$PYTHON" -c "import torch" 2>/dev/null || {
    echo "compare-model.sh: $PYTHON cannot import torch: pip install torch" >&2
    exit 1
}
cargo bench --bench model --features "$FEATURES" --no-run
RAYON_NUM_THREADS="$THREADS" cargo bench --bench model --features "$FEATURES" -- --noplot 2>&1 | grep -E "^ssd300|time:"
echo "pytorch peer ($THREADS threads, median seconds):"
"$PYTHON" benches/peers/model.py --threads "$THREADS" --repeats 10
