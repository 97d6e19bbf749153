#!/usr/bin/env bash
# SSD300 speed on a GPU beside PyTorch on the same GPU, in one run: built here, run on a machine
# with an NVIDIA GPU (which needs no Rust).
#
#   bash scripts/gpu-bench.sh build   # here: examples/throughput.rs in release with
#                                     # FEATURES (default cuda,wgpu), stripped and packed as
#                                     # gpu-bench/gpu-bench.tar.gz (git-ignored; under 64 MiB)
#   bash scripts/gpu-bench.sh run     # there, from the repository root
#
# `run` prints the GPU, then for each backend compiled in (BACKENDS, default "cuda wgpu"): the
# training step at batch 32 (forward, loss, backward, gradient norm and one read back, SGD),
# the same step cut into phases with a device sync after each, and inference with
# post-processing at batch 1 and 32; then the same work in PyTorch (benches/peers/gpu_model.py:
# fp32 defaults and bf16 autocast), then the training loader alone with 4, 8 and 16 workers.
# TRAIN_BATCH, INFER_BATCHES, WARMUP, ITERS and PEER_DEVICE shrink the run for a check of the
# script on a machine without a GPU. One JSON line per measurement; the whole log also goes to gpu-bench/results.jsonl. Each
# backend gets at most BACKEND_TIMEOUT seconds (default 150) so the run ends in under 8 minutes.
#
# `--features cuda` builds where github.com is reachable (Burn's CUDA backend downloads an LLVM
# bundle at build time); elsewhere `FEATURES=wgpu bash scripts/gpu-bench.sh build` and
# `BACKENDS=wgpu` run the same script end to end (on a software Vulkan its numbers mean nothing).
# The CUDA backend needs the NVIDIA driver, NVRTC and the CUDA headers at run time (CUDA_PATH,
# default /usr/local/cuda); wgpu needs a Vulkan loader and the NVIDIA Vulkan driver.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-bench
case "${1:-}" in
  build)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ssd/target/gpu-bench}
    FEATURES=${FEATURES:-cuda,wgpu}
    cargo build --release -p ssd --features "$FEATURES" --example throughput
    rm -rf "$OUT" && mkdir -p "$OUT/bin"
    cp "$CARGO_TARGET_DIR/release/examples/throughput" "$OUT/bin/throughput"
    strip "$OUT/bin/throughput"
    tar -C "$OUT" -czf "$OUT/gpu-bench.tar.gz" bin
    rm -rf "$OUT/bin"
    ls -la "$OUT"
    ;;
  run)
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
    PYTHON=${PYTHON:-python3}
    [ -x "$OUT/bin/throughput" ] || tar -C "$OUT" -xzf "$OUT/gpu-bench.tar.gz"
    LOG=$OUT/results.jsonl
    : >"$LOG"
    {
      date -u +'{"date":"%Y-%m-%dT%H:%M:%SZ"}'
      if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
          sed 's/^\(.*\), \(.*\), \(.*\)$/{"gpu":"\1","driver":"\2","memory":"\3"}/'
      fi
      for backend in ${BACKENDS:-cuda wgpu}; do
        timeout "${BACKEND_TIMEOUT:-150}" "$OUT/bin/throughput" model --backend "$backend" \
          --warmup "${WARMUP:-10}" --iters "${ITERS:-30}" --phases ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
          ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
          echo "{\"backend\":\"$backend\",\"error\":\"exit status $?\"}"
      done
      if "$PYTHON" -c 'import torch, torchvision' 2>/dev/null; then
        timeout "${BACKEND_TIMEOUT:-150}" "$PYTHON" benches/peers/gpu_model.py --warmup "${WARMUP:-10}" \
          --iters "${ITERS:-30}" ${PEER_DEVICE:+--device "$PEER_DEVICE"} ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
          ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
          echo "{\"backend\":\"pytorch\",\"error\":\"exit status $?\"}"
      else
        echo '{"backend":"pytorch","error":"python cannot import torch and torchvision"}'
      fi
      "$OUT/bin/throughput" loader --workers "${LOADER_WORKERS:-4,8,16}" 2>&1 || echo '{"what":"loader","error":"failed"}'
    } | tee "$LOG"
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
