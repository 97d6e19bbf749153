#!/usr/bin/env python3
"""The peer of benches/model.rs on this CPU with the same thread count:

- SSD300 (our amdegroot-layout PyTorch model from tools/make_model_fixtures.py, VGG16 widths,
  21 classes): forward at batch 1 and 8 (no_grad), and a training step at batch 4 (forward,
  MultiBox loss, backward, SGD with momentum and weight decay);
- with --model ssdlite320: torchvision's SSDLite320 on MobileNetV3-Large (its own modules,
  assembled as tools/make_lite_fixtures.py does; reduced tail, 21 classes): forward at batch 1
  and 8, a training step at batch 8, and MobileNetV3's depthwise convolutions alone (the rows of
  benches/model.rs's depthwise group), forward and forward + backward.

- with --model ssd300-resnet50: NVIDIA's SSD300 v1.1 on ResNet-50 (the written reference of
  tools/make_resnet_fixtures.py, 21 classes): forward at batch 1 and 8, a training step at batch 8.

Usage: model.py [--model ssd300|ssdlite320|ssd300-resnet50] [--threads N] [--repeats R] [--forward-only]
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


def train_step_timer(model, x, priors, repeats, weight_decay):
    batch = x.shape[0]
    i = torch.arange(batch * priors)
    labels = torch.where(i % 431 == 0, i % 20 + 1, torch.zeros_like(i)).reshape(batch, priors)
    loc_t = unit(batch * priors * 4, 2).reshape(batch, priors, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=weight_decay)

    def step():
        optimizer.zero_grad()
        loc, conf = model(x)
        loss_l, loss_c = multibox_loss(loc, conf, labels, loc_t)
        (loss_l + loss_c).backward()
        optimizer.step()

    return timed(step, repeats)


def network(model, side, priors, out, repeats, forward_only):
    """Forward at batch 1 and 8, a training step at batch 8 (outputs `[N, P, 4]`, `[N, P, C]`)."""
    model.eval()
    for batch in (1, 8):
        x = unit(batch * 3 * side * side, 1).reshape(batch, 3, side, side)

        def forward():
            with torch.no_grad():
                model(x)

        out["forward_batch%d" % batch] = timed(forward, repeats)
    if forward_only:
        return
    model.train()
    x = unit(8 * 3 * side * side, 1).reshape(8, 3, side, side)
    out["train_step_batch8"] = train_step_timer(model, x, priors, repeats, 5e-4)


class NvidiaOutputs(torch.nn.Module):
    """NVIDIA's SSD300 with its outputs in ssd-model's layout, as the loss takes them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        from make_resnet_fixtures import ours
        return ours(self.model, x)


def resnet(out, repeats, forward_only):
    from make_resnet_fixtures import FULL, SSD300

    width, blocks, extras, _ = FULL
    network(NvidiaOutputs(SSD300(width, blocks, extras, 21)), 300, 8732, out, repeats, forward_only)


def ssdlite(out, repeats, forward_only):
    from make_lite_fixtures import Lite, build

    _, backbone, head, _, _ = build(1.0, 1.0, 21)
    network(Lite(backbone, head), 320, 3234, out, repeats, forward_only)
    if forward_only:
        return
    for name, channels, side, kernel, stride in (("3x3_64ch_160px", 64, 160, 3, 2), ("5x5_672ch_20px", 672, 20, 5, 1)):
        conv = torch.nn.Conv2d(channels, channels, kernel, stride, (kernel - 1) // 2, groups=channels, bias=False)
        x = unit(8 * channels * side * side, 3).reshape(8, channels, side, side)

        def forward():
            with torch.no_grad():
                conv(x)

        xg = x.clone().requires_grad_(True)

        def forward_backward():
            conv.zero_grad()
            conv(xg).sum().backward()

        out["depthwise_forward_" + name] = timed(forward, repeats)
        out["depthwise_forward_backward_" + name] = timed(forward_backward, repeats)


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else (os.cpu_count() or 1)
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 10
    which = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "ssd300"
    torch.set_num_threads(threads)
    out = {"torch": torch.__version__, "threads": threads, "model": which}
    if which in ("ssdlite320", "ssd300-resnet50"):
        (ssdlite if which == "ssdlite320" else resnet)(out, repeats, "--forward-only" in sys.argv)
        print(json.dumps(out))
        return
    blocks, fc, dilation, extras, classes = FULL
    model = SSD(blocks, fc, dilation, extras, classes)
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
    out["train_step_batch4"] = train_step_timer(model, x, 8732, repeats, 5e-4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
