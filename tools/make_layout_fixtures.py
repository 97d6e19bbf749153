#!/usr/bin/env python3
"""Writes crates/ssd-model/tests/fixtures/layouts.json: the state-dict keys and shapes of
torchvision's real `ssd300_vgg16` (21 classes) and `vgg16` (ImageNet) models, built with no
weights (nothing is downloaded), plus amdegroot's SSD300 layout and `vgg16_reducedfc.pth` layout
as built by tools/make_model_fixtures.py at full VGG16 widths. The Rust test checks that each maps
onto SsdConfig::ssd300(21) with every key used and every parameter found.

Usage: python3 tools/make_layout_fixtures.py   (needs torch and torchvision; tested with 2.9.0 / 0.24.0)
"""

import json
import os
import sys

import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_model_fixtures import FULL, SSD  # noqa: E402


def entries(state_dict):
    return [[k, list(v.shape)] for k, v in state_dict.items()]


def main():
    tv_ssd = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    tv_vgg = torchvision.models.vgg16(weights=None)
    blocks, fc, dilation, extras, classes = FULL
    amdegroot = SSD(blocks, fc, dilation, extras, classes)
    reduced_fc = [[k[len("vgg."):], s] for k, s in entries(amdegroot.state_dict()) if k.startswith("vgg.")]
    out = {
        "generator": "tools/make_layout_fixtures.py (torchvision %s)" % torchvision.__version__,
        "torchvision_ssd300_vgg16": entries(tv_ssd.state_dict()),
        "torchvision_vgg16": entries(tv_vgg.state_dict()),
        "amdegroot_ssd300": entries(amdegroot.state_dict()),
        "amdegroot_vgg16_reducedfc": reduced_fc,
    }
    path = os.path.join(HERE, "..", "crates", "ssd-model", "tests", "fixtures", "layouts.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
    for k, v in out.items():
        if k != "generator":
            print(k, len(v), "tensors")


if __name__ == "__main__":
    main()
