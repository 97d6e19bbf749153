#!/usr/bin/env python3
"""The peer of benches/model.rs: SSD300 (our amdegroot-layout PyTorch model from
tools/make_model_fixtures.py, VGG16 widths, 21 classes) on this CPU with the same thread count:
forward at batch 1 and 8 (no_grad), and a training step at batch 4 (forward, MultiBox loss,
backward, SGD with momentum and weight decay).

Usage: model.py [--threads N] [--repeats R] [--forward-only]
Prints one JSON line of median seconds per operation.
"""

import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from make_model_fixtures import FULL, SSD, multibox_loss  # noqa: E402


def unit(count, salt):
    i = torch.arange(count, dtype=torch.int64) + salt
    h = (i * 2654435761) % (2 ** 32)
    return (h.double() / 2.0 ** 32 * 2.0 - 1.0).float()


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else (os.cpu_count() or 1)
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 10
    torch.set_num_threads(threads)
    blocks, fc, dilation, extras, classes = FULL
    model = SSD(blocks, fc, dilation, extras, classes)
    out = {"torch": torch.__version__, "threads": threads}
    model.eval()
    for batch in (1, 8):
        x = unit(batch * 3 * 300 * 300, 1).reshape(batch, 3, 300, 300) * 100

        def forward():
            with torch.no_grad():
                model(x)

        out["forward_batch%d" % batch] = timed(forward, repeats)
    if "--forward-only" in sys.argv:
        print(json.dumps(out))
        return
    model.train()
    x = unit(4 * 3 * 300 * 300, 1).reshape(4, 3, 300, 300) * 100
    i = torch.arange(4 * 8732)
    labels = torch.where(i % 431 == 0, i % 20 + 1, torch.zeros_like(i)).reshape(4, 8732)
    loc_t = unit(4 * 8732 * 4, 2).reshape(4, 8732, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad()
        loc, conf = model(x)
        loss_l, loss_c = multibox_loss(loc, conf, labels, loc_t)
        (loss_l + loss_c).backward()
        optimizer.step()

    out["train_step_batch4"] = timed(step, repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
