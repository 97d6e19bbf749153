# Source this (bash) before building `--features cuda` (cargo build, clippy, test) on a machine
# that cannot reach github.com:
#
#   source scripts/cuda-env.sh
#   cargo build --release -p ssd-cli --features cuda
#
# Installs LLVM 23.1 from PyPI into $SSD_CACHE if missing (scripts/install-llvm.sh) and points
# cubecl-llvm's build dependency at it: tracel-llvm-bundler looks for its LLVM in
# `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4` and downloads nothing when `.tracel-llvm-installed`
# is there, so XDG_DATA_HOME is set to a folder of $SSD_CACHE holding exactly that.
#
# CUDARC_CUDA_VERSION picks the CUDA driver API the binary is built for (cudarc otherwise asks
# `nvcc`, and without it takes its newest bindings): 13000 (CUDA 13.0, NVIDIA driver 580 or newer)
# unless set. The binary loads libcuda, NVRTC and friends at run time (README, "GPU backends").
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
if bash "$(dirname "${BASH_SOURCE[0]}")/install-llvm.sh"; then
  _prefix=$SSD_CACHE/cuda-llvm/tracel/tracel-llvm-23.1.0-4
  mkdir -p "$_prefix"
  for _d in bin include lib; do
    _target=$SSD_CACHE/llvm-23.1.1/mlc_llvm_static/static/$_d
    [ "$(readlink "$_prefix/$_d")" = "$_target" ] || ln -sfn "$_target" "$_prefix/$_d"
  done
  # cubecl-llvm's build script watches this file: touching it again would rebuild every crate
  # above it.
  [ -f "$_prefix/.tracel-llvm-installed" ] || touch "$_prefix/.tracel-llvm-installed"
  export XDG_DATA_HOME=$SSD_CACHE/cuda-llvm
  export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
  unset _prefix _d _target
else
  echo "cuda-env.sh: LLVM 23.1 is not installed; \`--features cuda\` will not build" >&2
  false
fi
