#!/usr/bin/env bash
# The checks that need a real GPU, prepared here and run on a machine with one (e.g. the lent
# device machine, which has no Rust): does burn-wgpu reduce long axes correctly on a real Vulkan
# driver, and do the SSD-sized conv gradients on wgpu agree with flex there?
#
#   bash scripts/gpu-check.sh build   # here: builds the probe and the backend test (flex + wgpu),
#                                     #       stripped and packed as gpu-check/gpu-check.tar.gz
#                                     #       (git-ignored, ~32 MB: fits a 64 MiB carry)
#   bash scripts/gpu-check.sh run     # there, from the repository root (needs a Vulkan driver)
#
# With the session's device tool: build here, then run `bash scripts/gpu-check.sh run` there with
# `carry: ["gpu-check"]` (the folder is git-ignored, so it only travels when carried).
# `run` prints the long-axis reduction table (docs/wgpu-reduce.md), runs the backend test
# including the ignored wgpu case (on lavapipe that case fails by design: Mesa's loop limit), then
# `ssd quickstart` on wgpu (the product end to end on the GPU, timed; `QUICKSTART_BACKENDS="wgpu flex"`
# adds flex on the CPUs; pass
# `QUICKSTART_ITERATIONS=N` to shorten it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-check
case "${1:-}" in
  build)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ssd/target/gpu-check}
    # One cargo invocation for both packages, so that Burn is built once with one feature set.
    cargo build --release -p ssd -p ssd-cli --features ssd/flex,ssd/wgpu --example reduce_probe --bin ssd
    bin=$(cargo test --release -p ssd --features flex,wgpu --test backends --no-run --message-format=json 2>/dev/null |
      sed -n 's/.*"executable":"\([^"]*backends[^"]*\)".*/\1/p' | tail -n 1)
    rm -rf "$OUT" && mkdir -p "$OUT/bin"
    cp "$CARGO_TARGET_DIR/release/examples/reduce_probe" "$OUT/bin/reduce_probe"
    cp "$bin" "$OUT/bin/backends"
    cp "$CARGO_TARGET_DIR/release/ssd" "$OUT/bin/ssd"
    strip "$OUT/bin/reduce_probe" "$OUT/bin/backends" "$OUT/bin/ssd"
    tar -C "$OUT" -czf "$OUT/gpu-check.tar.gz" bin
    rm -rf "$OUT/bin"
    ls -la "$OUT"
    ;;
  run)
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    [ -x "$OUT/bin/backends" ] || tar -C "$OUT" -xzf "$OUT/gpu-check.tar.gz"
    "$OUT/bin/reduce_probe"
    "$OUT/bin/backends" --include-ignored --test-threads 1 || echo "backends test FAILED"
    "$OUT/bin/ssd" backends
    for backend in ${QUICKSTART_BACKENDS:-wgpu}; do
      start=$(date +%s)
      "$OUT/bin/ssd" quickstart --backend "$backend" --workers 8 \
        ${QUICKSTART_ITERATIONS:+--iterations "$QUICKSTART_ITERATIONS"} --results "/tmp/quickstart-$backend" |
        grep -v '^checkpoint' | tail -n 14
      echo "quickstart on $backend: $(($(date +%s) - start)) s"
    done
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
