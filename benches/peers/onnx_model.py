#!/usr/bin/env python3
"""SSD300 forward on this CPU with ONNX Runtime, the peer of benches/model.rs's
`ssd300_flex/forward_batch{1,8}` and of benches/peers/model.py: the ONNX file `ssd export` wrote,
the same input (hashed values times 100), the same thread count, median seconds of `--repeats`
runs after one warm-up.

Usage: onnx_model.py MODEL.onnx [--threads N] [--repeats R]
Prints one JSON line. Needs scripts/install-onnx-tools.sh's environment.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def unit(count, salt):
    i = np.arange(count, dtype=np.int64) + salt
    h = (i * 2654435761) % (2 ** 32)
    return (h.astype(np.float64) / 2.0 ** 32 * 2.0 - 1.0).astype(np.float32)


def main():
    path = sys.argv[1]
    arg = lambda name, default: int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default
    threads, repeats = arg("--threads", os.cpu_count() or 1), arg("--repeats", 10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    side = session.get_inputs()[0].shape[2]
    out = {"onnxruntime": ort.__version__, "threads": threads}
    for batch in (1, 8):
        x = unit(batch * 3 * side * side, 1).reshape(batch, 3, side, side) * 100
        session.run(None, {"images": x})
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, {"images": x})
            times.append(time.perf_counter() - start)
        out["forward_batch%d" % batch] = statistics.median(times)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
