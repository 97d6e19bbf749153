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
#
# `--cuda-2.11`: instead, the headers and libraries of PyTorch 2.11's CUDA 13.0 build (PyPI's
# `torch==2.11.0`, a 531 MB wheel) in $SSD_CACHE/libtorch-2.11-cuda, for a binary that runs on a
# GPU machine whose own PyTorch is 2.11 (its library folder on LD_LIBRARY_PATH there). Only
# `torch/include` and `torch/lib` are unpacked: the wheel's nvidia dependencies (cuDNN, cuBLAS,
# ...) are not installed, so the binary cannot run here. torch-sys 0.22 is built against it
# with `LIBTORCH_BYPASS_VERSION_CHECK` (its C++ API is unchanged from 2.9 where tch uses it) and
# linked with `--allow-shlib-undefined`: see `scripts/gpu-bench.sh build`.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}

if [ "${1:-}" = --cuda-2.11 ]; then
  DIR=$SSD_CACHE/libtorch-2.11-cuda
  if [ ! -f "$DIR/.complete" ]; then
    rm -rf "$DIR"
    mkdir -p "$DIR/wheel"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --python-version 3.12 --dest "$DIR/wheel" "torch==2.11.0"
    python3 - "$DIR" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
(wheel,) = (root / "wheel").glob("torch-2.11.0-*.whl")
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.startswith(("torch/include/", "torch/lib/")) and not name.endswith("/"):
            target = root / name[len("torch/"):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
    rm -rf "$DIR/wheel"
    echo "2.11.0" >"$DIR/build-version"
    touch "$DIR/.complete"
  fi
  [ -f "$DIR/lib/libtorch_cuda.so" ] || { echo "no libtorch_cuda.so in $DIR/lib" >&2; exit 1; }
  echo "libtorch 2.11.0 (CUDA 13.0; headers and libraries only) ready in $DIR" >&2
  exit 0
fi
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
