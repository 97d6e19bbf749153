#!/usr/bin/env bash
# Installs ONNX Runtime with its OpenVINO execution provider: PyPI's onnxruntime-openvino wheel
# (~85 MB) in $SSD_CACHE/openvino-venv. Its onnxruntime/capi folder holds libonnxruntime.so.1.*,
# the provider and OpenVINO's own libraries, which `ssd ... --engine onnxruntime --precision bf16`
# loads (see docs/onnxruntime.md). Idempotent: a second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/openvino-venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    onnxruntime-openvino==1.24.1 numpy pillow
fi
"$VENV/bin/python" -c "import onnxruntime as o; print('openvino venv: onnxruntime', o.__version__, o.get_available_providers())"
