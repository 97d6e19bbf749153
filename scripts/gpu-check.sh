#!/usr/bin/env bash
# The checks that need a real GPU, prepared here and run on a machine with one (e.g. the lent
# device machine, which has no Rust): does burn-wgpu reduce long axes correctly on a real Vulkan
# driver, and do the SSD-sized conv gradients on wgpu agree with flex there?
#
#   bash scripts/gpu-check.sh build   # here: builds the probe and the backend test (flex + wgpu)
#                                     #       into gpu-check/ (git-ignored, ~80 MB)
#   bash scripts/gpu-check.sh run     # there, from the repository root
#
# `run` prints the long-axis reduction table (docs/wgpu-reduce.md) and runs the backend test
# including the ignored wgpu case. On lavapipe that case fails by design (Mesa's loop limit).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-check
case "${1:-}" in
  build)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ssd/target/gpu-check}
    cargo build --release --features flex,wgpu --example reduce_probe
    bin=$(cargo test --release -p ssd --features flex,wgpu --test backends --no-run --message-format=json 2>/dev/null |
      sed -n 's/.*"executable":"\([^"]*backends[^"]*\)".*/\1/p' | tail -n 1)
    mkdir -p "$OUT"
    cp "$CARGO_TARGET_DIR/release/examples/reduce_probe" "$bin" "$OUT/"
    mv "$OUT/$(basename "$bin")" "$OUT/backends"
    ls -la "$OUT"
    ;;
  run)
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    "$OUT/reduce_probe"
    "$OUT/backends" --include-ignored --test-threads 1
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
