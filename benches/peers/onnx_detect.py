#!/usr/bin/env python3
"""The peer of `ssd detect --engine onnxruntime` over a folder: a plain Python loop with ONNX
Runtime, what a user writes after `ssd export`: PIL decode, resize to the network's input
(bilinear), `(rgb - mean_rgb) / std_rgb` from the file's metadata, `session.run` per batch. No
post-processing (softmax, decoding, NMS), which `ssd detect` does on top, so this is the lower
bound of such a loop.

Usage: onnx_detect.py MODEL.onnx FOLDER [--batch-size B] [--threads N]
Prints one JSON line (images, seconds of the loop). Needs numpy, pillow and onnxruntime.
"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    path, folder = sys.argv[1], sys.argv[2]
    arg = lambda name, default: int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default
    batch, threads = arg("--batch-size", 1), arg("--threads", os.cpu_count() or 1)
    start = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    mean = np.array(json.loads(meta["mean_rgb"]), dtype=np.float32).reshape(1, 1, 3)
    std = np.array(json.loads(meta.get("std_rgb", "[1, 1, 1]")), dtype=np.float32).reshape(1, 1, 3)
    side = session.get_inputs()[0].shape[2]
    files = sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    boxes = 0
    for i in range(0, len(files), batch):
        inputs = []
        for f in files[i : i + batch]:
            image = Image.open(f).convert("RGB").resize((side, side), Image.BILINEAR)
            x = (np.asarray(image, dtype=np.float32) - mean) / std
            inputs.append(x.transpose(2, 0, 1))
        loc, conf = session.run(None, {"images": np.stack(inputs)})
        boxes += loc.shape[0] * loc.shape[1]
    print(json.dumps({"images": len(files), "seconds": time.perf_counter() - start, "priors": boxes}))


if __name__ == "__main__":
    main()
