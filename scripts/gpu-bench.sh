#!/usr/bin/env bash
# SSD300 speed on a GPU beside PyTorch on the same GPU, in one run: built here, run on a machine
# with an NVIDIA GPU (which needs no Rust).
#
#   bash scripts/gpu-bench.sh build   # here: examples/throughput.rs in release, two binaries:
#                                     #   throughput-cubecl (cuda, wgpu; LLVM 23.1 from PyPI,
#                                     #   scripts/cuda-env.sh) and throughput-tch (libtorch 2.11,
#                                     #   CUDA 13.0, `install-libtorch.sh --cuda-2.11`), stripped,
#                                     #   packed as gpu-bench/gpu-bench.tar.gz (git-ignored; under
#                                     #   64 MiB)
#   bash scripts/gpu-bench.sh run     # there, from the repository root
#
# Two binaries, not one: the tch one needs PyTorch's CUDA libraries at load time, and where they
# are missing it cannot start at all; cuda and wgpu must not depend on that.
#
# `run` prints the GPU and what `ldd` finds missing for each binary, then for each backend
# (BACKENDS, default "cuda tch wgpu"): the training step at batch 32 (forward, loss, backward,
# gradient norm and one read back, SGD), the same step cut into phases with a device sync after
# each, and inference with post-processing at batch 1 and 32; then the same work in PyTorch
# (benches/peers/gpu_model.py: fp32 defaults, which let cuDNN use TF32, and bf16 autocast), then
# the training loader alone with 4, 8 and 16 workers. One JSON line per measurement; the whole
# log also goes to gpu-bench/results.jsonl. A backend that fails prints why (a JSON line with its
# exit status, its own error above it) and the run goes on. Each backend gets at most
# BACKEND_TIMEOUT seconds (default 100) and PyTorch PEER_TIMEOUT (default 120), so the run ends
# in under 8 minutes, plus up to 11 for EXTRA_MODELS (default "ssdlite320 ssd300-resnet50": the
# training step and inference rows on EXTRA_BACKENDS, default "cuda tch", and PyTorch's; set it
# empty to skip them). TRAIN_BATCH, INFER_BATCHES, WARMUP, ITERS, MODEL (the Burn backends'
# network, default ssd300) and PEER_DEVICE shrink it for a dry run on a machine without a GPU
# (`bash scripts/gpu-bench.sh dry-run` does that here, with the small preset; PyTorch's peer stays
# SSD300).
#
# At run time: cuda needs the driver's libcuda.so.1 and CUDA's nvvm/libdevice/libdevice.10.bc
# (under CUDA_PATH; where no toolkit has it, `run` takes the copy PyTorch's Triton ships); tch
# needs PyTorch 2.11's libraries (`run` puts the `lib/` of PYTHON's torch on LD_LIBRARY_PATH);
# wgpu needs a Vulkan loader and the NVIDIA Vulkan driver.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-bench
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}

build_one() { # name, features, then env assignments for that build
  local name=$1 features=$2
  shift 2
  env "$@" cargo build --release -p ssd --no-default-features --features "$features" \
    --example throughput
  cp "$CARGO_TARGET_DIR/release/examples/throughput" "$OUT/bin/throughput-$name"
  strip "$OUT/bin/throughput-$name"
}

case "${1:-}" in
  build)
    # Each binary in its own target dir: their RUSTFLAGS and LIBTORCH differ.
    TARGET=${CARGO_TARGET_DIR:-$SSD_CACHE/target/gpu-bench}
    rm -rf "$OUT" && mkdir -p "$OUT/bin"
    (
      # shellcheck source=scripts/cuda-env.sh
      source scripts/cuda-env.sh
      export CARGO_TARGET_DIR=$TARGET-cubecl
      build_one cubecl cuda,wgpu
    )
    (
      bash scripts/install-libtorch.sh --cuda-2.11
      export CARGO_TARGET_DIR=$TARGET-tch
      # libtorch_cuda.so's own dependencies (cudart, cuDNN, ...) are not here: the link is told
      # not to resolve them; they are found on the GPU machine at load time.
      build_one tch tch LIBTORCH="$SSD_CACHE/libtorch-2.11-cuda" LIBTORCH_CXX11_ABI=1 \
        LIBTORCH_BYPASS_VERSION_CHECK=1 RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined"
    )
    tar -C "$OUT" -czf "$OUT/gpu-bench.tar.gz" bin
    ls -la "$OUT/bin" "$OUT/gpu-bench.tar.gz"
    rm -rf "$OUT/bin"
    ;;
  run | dry-run)
    if [ "$1" = dry-run ]; then
      export TRAIN_BATCH=${TRAIN_BATCH:-2} INFER_BATCHES=${INFER_BATCHES:-1,2} WARMUP=${WARMUP:-1}
      export ITERS=${ITERS:-1} PEER_DEVICE=${PEER_DEVICE:-cpu} LOADER_WORKERS=${LOADER_WORKERS:-2}
      # SSD300 does not get through wgpu's autotuning on lavapipe (a software Vulkan) in 15
      # minutes, the small preset does with the least autotuning (its warm-up took 396 s in the
      # release binary, the whole dry run 8.6 minutes). A real GPU keeps cubecl's default level.
      export MODEL=${MODEL:-small} CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
      export BACKEND_TIMEOUT=${BACKEND_TIMEOUT:-900}
      export PYTHON=${PYTHON:-$SSD_CACHE/tools-venv/bin/python}
    fi
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    PYTHON=${PYTHON:-python3}
    [ -d "$OUT/bin" ] || tar -C "$OUT" -xzf "$OUT/gpu-bench.tar.gz"
    TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
    if [ -z "${CUDA_PATH:-}" ] && [ ! -f /usr/local/cuda/nvvm/libdevice/libdevice.10.bc ]; then
      LIBDEVICE=$("$PYTHON" -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/lib/libdevice.10.bc"))' 2>/dev/null || true)
      if [ -n "$LIBDEVICE" ] && [ -f "$LIBDEVICE" ]; then
        mkdir -p "$OUT/cuda/nvvm/libdevice"
        ln -sfn "$LIBDEVICE" "$OUT/cuda/nvvm/libdevice/libdevice.10.bc"
        export CUDA_PATH=$PWD/$OUT/cuda
      fi
    fi
    binary_for() { if [ "$1" = tch ]; then echo "$OUT/bin/throughput-tch"; else echo "$OUT/bin/throughput-cubecl"; fi; }
    LOG=$OUT/results.jsonl
    : >"$LOG"
    {
      date -u +'{"date":"%Y-%m-%dT%H:%M:%SZ"}'
      if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
          sed 's/^\(.*\), \(.*\), \(.*\)$/{"gpu":"\1","driver":"\2","memory":"\3"}/'
      fi
      echo "{\"cuda_path\":\"${CUDA_PATH:-}\",\"torch_lib\":\"$TORCH_LIB\"}"
      for bin in "$OUT"/bin/*; do
        missing=$(LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$bin" 2>&1 |
          sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | tr '\n' ' ')
        echo "{\"binary\":\"$(basename "$bin")\",\"ldd_missing\":\"$missing\"}"
      done
      for backend in ${BACKENDS:-cuda tch wgpu}; do
        LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
          timeout "${BACKEND_TIMEOUT:-100}" "$(binary_for "$backend")" model --backend "$backend" \
          --model "${MODEL:-ssd300}" --warmup "${WARMUP:-10}" --iters "${ITERS:-30}" --phases ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
          ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
          echo "{\"backend\":\"$backend\",\"error\":\"exit status $?\"}"
      done
      if "$PYTHON" -c 'import torch, torchvision' 2>/dev/null; then
        timeout "${PEER_TIMEOUT:-120}" "$PYTHON" benches/peers/gpu_model.py --warmup "${WARMUP:-10}" \
          --iters "${ITERS:-30}" ${PEER_DEVICE:+--device "$PEER_DEVICE"} ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
          ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
          echo "{\"backend\":\"pytorch\",\"error\":\"exit status $?\"}"
      else
        echo '{"backend":"pytorch","error":"python cannot import torch and torchvision"}'
      fi
      # The other networks (EXTRA_MODELS, default SSDLite320 and NVIDIA's ResNet-50 SSD300, whose
      # published comparison point is batch 32): the same rows on cuda and tch, and PyTorch's.
      for model in ${EXTRA_MODELS-ssdlite320 ssd300-resnet50}; do
        for backend in ${EXTRA_BACKENDS:-cuda tch}; do
          LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
            timeout "${BACKEND_TIMEOUT:-100}" "$(binary_for "$backend")" model --backend "$backend" \
            --model "$model" --warmup "${WARMUP:-10}" --iters "${ITERS:-30}" ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
            ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
            echo "{\"backend\":\"$backend\",\"model\":\"$model\",\"error\":\"exit status $?\"}"
        done
        timeout "${PEER_TIMEOUT:-120}" "$PYTHON" benches/peers/gpu_model.py --model "$model" --warmup "${WARMUP:-10}" \
          --iters "${ITERS:-30}" ${PEER_DEVICE:+--device "$PEER_DEVICE"} ${TRAIN_BATCH:+--train-batch "$TRAIN_BATCH"} \
          ${INFER_BATCHES:+--infer-batches "$INFER_BATCHES"} 2>&1 ||
          echo "{\"backend\":\"pytorch\",\"model\":\"$model\",\"error\":\"exit status $?\"}"
      done
      timeout 60 "$OUT/bin/throughput-cubecl" loader --workers "${LOADER_WORKERS:-4,8,16}" 2>&1 ||
        echo '{"what":"loader","error":"failed"}'
    } | tee "$LOG"
    ;;
  *)
    echo "usage: $0 build|run|dry-run" >&2
    exit 2
    ;;
esac
