#!/usr/bin/env bash
# Installs what `ssd track` and its checks need: FFmpeg's command-line tools (ffmpeg, ffprobe;
# Debian's package), which decode and encode video for `ssd track`, and the MOT metrics'
# reference, PyPI's motmetrics (with numpy, scipy, pandas), in $SSD_CACHE/mot-venv, for
# tools/mot_metrics.py. Idempotent: a second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/mot-venv
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import motmetrics, scipy, pandas, numpy" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    motmetrics==1.4.0 numpy scipy pandas
fi
ffmpeg -hide_banner -version | head -n 1
"$VENV/bin/python" -c "from importlib.metadata import version as v; print('mot venv: motmetrics', v('motmetrics'), 'numpy', v('numpy'), 'pandas', v('pandas'))"
