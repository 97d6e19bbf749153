# Source this (bash) before type-checking `--features cuda` (clippy, `cargo check`) on a machine
# that cannot reach github.com.
#
# Burn 0.22.1's CUDA backend (cubecl-cuda 0.11) depends on cubecl-llvm, whose build script
# downloads a tracel LLVM 23.1 bundle from GitHub releases into `$XDG_DATA_HOME/tracel/` and
# compiles two small C++ shims against its headers. Where GitHub is out of reach, this points that
# folder at Debian's LLVM 19 (llvm-19-dev, installed here if missing) under its own
# XDG_DATA_HOME in $SSD_CACHE, so that the shims compile and every crate type-checks. It is for
# checking only: a binary linked that way would mix LLVM 19 libraries with LLVM 23 bindings, so
# build real `cuda` binaries where the bundle downloads (the default, with network access).
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
if [ ! -x /usr/lib/llvm-19/bin/llvm-config ]; then
  _sudo=""
  [ "$(id -u)" -eq 0 ] || _sudo=sudo
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq --no-install-recommends llvm-19-dev >/dev/null
  unset _sudo
fi
_prefix=$SSD_CACHE/cuda-check/tracel/tracel-llvm-23.1.0-4
mkdir -p "$_prefix"
for _d in bin include lib; do ln -sfn "/usr/lib/llvm-19/$_d" "$_prefix/$_d"; done
touch "$_prefix/.tracel-llvm-installed"
export XDG_DATA_HOME=$SSD_CACHE/cuda-check
unset _prefix _d
