#!/usr/bin/env bash
# Installs the Python environment that regenerates the PyTorch reference fixtures (tools/*.py) and
# runs the Python peers of the benches: full PyPI torch 2.9.0 + torchvision 0.24.0 (with their
# CUDA dependencies: PyPI has no CPU-only torch for Linux; ~4 GB of downloads, ~7 GB on disk),
# numpy and opencv-python-headless, in $SSD_CACHE/tools-venv. Idempotent: a second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/tools-venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, torchvision, numpy, cv2" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    torch==2.9.0 torchvision==0.24.0 numpy opencv-python-headless
fi
"$VENV/bin/python" -c "import torch, torchvision; print('tools venv: torch', torch.__version__, 'torchvision', torchvision.__version__)"
