#!/usr/bin/env bash
# Installs the static LLVM 23.1 that Burn's `cuda` backend links, from PyPI, outside the clone.
#
# burn-cuda 0.22.1 -> cubecl-cuda 0.11.3 -> cubecl-llvm 0.11.3, which links LLVM 23.1 statically
# (its kernel compiler emits PTX through LLVM's NVPTX target) and whose build dependency
# tracel-llvm-bundler downloads an LLVM bundle from GitHub unless one is already installed in
# `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4` (marked by `.tracel-llvm-installed`). PyPI has a
# relocatable static LLVM 23.1.1: `mlc-llvm-static` (X86) plus `mlc-llvm-static-extra-targets`
# (NVPTX, ...), about 90 MB of wheels. Unzipped into one folder they hold
# `mlc_llvm_static/static/{bin,include,lib}`, with `bin/llvm-config` a Python script.
#
# Also installs the one system library LLVM's `--system-libs` names that a Debian machine may lack
# as a development link: libzstd (libzstd-dev). Idempotent: a second run only checks.
#
# Usage: bash scripts/install-llvm.sh   (then `source scripts/cuda-env.sh` sets up a build)
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
LLVM_VERSION=23.1.1
MLC_VERSION=$LLVM_VERSION.post0
ROOT=$SSD_CACHE/llvm-$LLVM_VERSION
SDK=$ROOT/mlc_llvm_static/static

if [ ! -x "$SDK/bin/llvm-config" ] || [ ! -f "$ROOT/.complete" ]; then
  rm -rf "$ROOT"
  mkdir -p "$ROOT/wheels"
  PY=python3
  if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$ROOT/venv"
    PY=$ROOT/venv/bin/python
  fi
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$ROOT/wheels" \
    "mlc-llvm-static==$MLC_VERSION" "mlc-llvm-static-extra-targets==$MLC_VERSION"
  for wheel in "$ROOT"/wheels/*.whl; do
    "$PY" -m zipfile -e "$wheel" "$ROOT"
  done
  rm -rf "$ROOT/wheels" "$ROOT/venv"
  chmod +x "$SDK/bin/llvm-config"
  touch "$ROOT/.complete"
fi

if ! ldconfig -p | grep -q 'libzstd\.so '; then
  _sudo=""
  [ "$(id -u)" -eq 0 ] || _sudo=sudo
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq --no-install-recommends \
    libzstd-dev >/dev/null
fi

version=$("$SDK/bin/llvm-config" --version)
targets=$("$SDK/bin/llvm-config" --targets-built)
if [ "$version" != "$LLVM_VERSION" ] || [[ " $targets " != *" NVPTX "* ]]; then
  echo "install-llvm.sh: $SDK is LLVM $version with targets '$targets'; expected $LLVM_VERSION with NVPTX" >&2
  exit 1
fi
echo "LLVM $version ($targets) ready in $SDK" >&2
