#!/usr/bin/env bash
# Installs a software Vulkan driver (Mesa's lavapipe) so burn-wgpu finds an adapter on a machine
# without a GPU. Debian/Ubuntu; needs root (or sudo). Idempotent.
set -euo pipefail
if [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] && ldconfig -p | grep -q libvulkan.so.1; then
  echo "software Vulkan (lavapipe) already installed" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
echo "software Vulkan (lavapipe) installed" >&2
