#!/usr/bin/env bash
# Installs what the test of `ssd serve`'s page needs: Debian's Chromium and ChromeDriver
# (/usr/bin/chromium, /usr/bin/chromedriver; no browser download) and PyPI's selenium, which
# drives them, in $SSD_CACHE/browser-venv. Debian/Ubuntu; needs root (or sudo). Idempotent: a
# second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/browser-venv

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import selenium" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check selenium==4.50.0
fi
echo "browser: $(chromedriver --version | cut -d' ' -f1-2), selenium $("$VENV/bin/python" -c 'import selenium; print(selenium.__version__)')" >&2
