#!/usr/bin/env bash
# Installs a CPU-only libtorch 2.9.0 for burn-tch, from PyPI's `torch` wheel, outside the clone.
#
# burn-tch 0.22.1 -> tch 0.22.0 -> torch-sys 0.22.0, which expects libtorch 2.9.0. PyPI has only the
# CUDA build of torch for Linux x86_64; its full dependency set is ~4 GB of downloads (6.7 GB on
# disk). A CPU-only machine needs much less:
#   - the torch wheel itself, without dependencies (--no-deps);
#   - libtorch_cpu.so links libcudart.so.12 and libcupti.so.12 (even on CPU), so the two small
#     wheels nvidia-cuda-runtime-cu12 and nvidia-cuda-cupti-cu12, at the versions torch 2.9.0 pins;
#   - a `libtorch` folder in the layout torch-sys reads (include/, lib/) whose lib/ holds the CPU
#     libraries only. torch-sys links libtorch_cuda.so whenever it exists, and the wheel's libtorch.so
#     is an umbrella that needs libtorch_cuda.so (and with it cuDNN, cuBLAS, ...). libtorch's own CPU
#     distribution ships libtorch.so as an empty umbrella over libtorch_cpu.so; we build the same
#     umbrella with gcc.
# About 950 MB of downloads. Idempotent: a second run only checks.
#
# Afterwards, for building and running with `--features tch`:
#   source scripts/libtorch-env.sh
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/torch-venv
LIBTORCH_DIR=$SSD_CACHE/libtorch-cpu
TORCH_VERSION=2.9.0
CUDA_RT_VERSION=12.8.90 # pinned by torch 2.9.0's metadata (nvidia-cuda-runtime-cu12, -cupti-cu12)

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip show torch 2>/dev/null | grep -q "^Version: $TORCH_VERSION"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "torch==$TORCH_VERSION" \
    "nvidia-cuda-runtime-cu12==$CUDA_RT_VERSION" \
    "nvidia-cuda-cupti-cu12==$CUDA_RT_VERSION"
fi

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
TORCH=$SITE/torch
mkdir -p "$LIBTORCH_DIR/lib"
ln -sfn "$TORCH/include" "$LIBTORCH_DIR/include"
for lib in libc10.so libtorch_cpu.so libgomp.so.1; do
  ln -sfn "$TORCH/lib/$lib" "$LIBTORCH_DIR/lib/$lib"
done
for dir in "$SITE/nvidia/cuda_runtime/lib" "$SITE/nvidia/cuda_cupti/lib"; do
  for lib in "$dir"/*.so*; do ln -sfn "$lib" "$LIBTORCH_DIR/lib/$(basename "$lib")"; done
done
if [ ! -f "$LIBTORCH_DIR/lib/libtorch.so" ] || [ -L "$LIBTORCH_DIR/lib/libtorch.so" ]; then
  rm -f "$LIBTORCH_DIR/lib/libtorch.so"
  echo 'void ssd_libtorch_cpu_umbrella(void) {}' >"$LIBTORCH_DIR/umbrella.c"
  gcc -shared -fPIC -o "$LIBTORCH_DIR/lib/libtorch.so" "$LIBTORCH_DIR/umbrella.c" \
    -Wl,--no-as-needed -L"$LIBTORCH_DIR/lib" -ltorch_cpu -lc10
fi
echo "$TORCH_VERSION" >"$LIBTORCH_DIR/build-version"
echo "libtorch $TORCH_VERSION (CPU) ready in $LIBTORCH_DIR" >&2
