#!/usr/bin/env bash
# Installs the Python tools that the COCO metric is checked and timed against: pycocotools (the
# reference), faster-coco-eval and hotcoco (its Python package), with numpy, in
# $SSD_CACHE/coco-venv. Used by tools/make_coco_fixtures.py and benches/peers/coco_eval.py; not
# by CI (the fixtures they write are committed). Idempotent: a second run only checks.
set -euo pipefail

SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
VENV=$SSD_CACHE/coco-venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pycocotools, faster_coco_eval, hotcoco, numpy" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    pycocotools==2.0.11 faster-coco-eval==1.8.0 hotcoco==1.3.0 numpy
fi
"$VENV/bin/python" -c "from importlib.metadata import version as v; print('coco venv: pycocotools', v('pycocotools'), 'faster-coco-eval', v('faster-coco-eval'), 'hotcoco', v('hotcoco'))"
