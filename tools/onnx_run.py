"""Checks an ONNX file and runs it with ONNX Runtime (CPU) on one input, for the tests of
`ssd export` (crates/ssd-model/tests/onnx_runtime.rs).

    python tools/onnx_run.py MODEL.onnx INPUT.f32 N,3,S,S OUT_DIR

`onnx.checker.check_model(full_check=True)` first (shape inference included); then the
float32 little-endian input of that shape is fed as `images`, and each output is written to
OUT_DIR/<name>.bin (little-endian, its own dtype) with OUT_DIR/outputs.json listing names,
dtypes and shapes in graph order. Needs scripts/install-onnx-tools.sh's environment.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, input_path, shape, out_dir = sys.argv[1:5]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    shape = [int(v) for v in shape.split(",")]
    images = np.fromfile(input_path, dtype="<f4").reshape(shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {"images": images})
    listing = []
    for name, value in zip(names, values):
        value = np.ascontiguousarray(value)
        value.astype(value.dtype.newbyteorder("<")).tofile(os.path.join(out_dir, name + ".bin"))
        listing.append({"name": name, "dtype": str(value.dtype), "shape": list(value.shape)})
    meta = {p.key: p.value for p in model.metadata_props}
    with open(os.path.join(out_dir, "outputs.json"), "w") as f:
        json.dump({"outputs": listing, "metadata_keys": sorted(meta),
                   "opset": [o.version for o in model.opset_import]}, f)


if __name__ == "__main__":
    main()
