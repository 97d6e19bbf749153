#!/usr/bin/env bash
# Installs QEMU's user-mode emulator (qemu-x86_64), which runs a test binary as if on an older CPU
# (`-cpu Haswell`: AVX2 and FMA, no AVX-512). CI uses it to check that a Flex build with the
# `x86-v4` kernels still runs, and gives the same numbers, on a CPU without AVX-512. Debian/Ubuntu;
# needs root (or sudo). Idempotent.
set -euo pipefail
if command -v qemu-x86_64 >/dev/null; then
  echo "qemu-x86_64 already installed" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
echo "qemu-x86_64 installed" >&2
