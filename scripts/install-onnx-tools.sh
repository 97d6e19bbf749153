#!/usr/bin/env bash
# Installs what checks and benches `ssd export`'s ONNX files and what `--engine onnxruntime`
# loads: PyPI's onnx (the checker) and onnxruntime (CPU; its onnxruntime/capi/libonnxruntime.so.1.*),
# with numpy and pillow (benches/peers/onnx_detect.py), in $SSD_CACHE/onnx-venv (~80 MB of
# downloads). Idempotent: a second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/onnx-venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    onnx==1.23.2 onnxruntime==1.32.0 numpy pillow
fi
"$VENV/bin/python" -c "import onnx, onnxruntime; print('onnx venv: onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)"
