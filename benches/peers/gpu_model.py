#!/usr/bin/env python3
"""The PyTorch peer of examples/throughput.rs on a GPU: the same SSD300 (our amdegroot-layout
model from tools/make_model_fixtures.py, VGG16 widths, 21 classes) and the same work:

- a training step at batch 32 (forward, MultiBox loss with the argsort hard-negative mining of
  the ports, backward, SGD with momentum 0.9 and weight decay 5e-4, the loss read back), inputs
  already on the GPU;
- inference with post-processing at batch 1 and 32: softmax, per class the scores above 0.01 (at
  most 400), torchvision's batched NMS at 0.45, 200 per image, detections copied to the host.

Rows: PyTorch's defaults (fp32; cuDNN may use TF32 for convolutions, as it does by default), and
bf16 autocast as a reference. Each is timed after --warmup iterations over --iters iterations,
wall clock of the whole loop with a synchronize at the end.

With --model ssdlite320 or ssd300-resnet50 the same rows for torchvision's SSDLite320 (its own
modules, as tools/make_lite_fixtures.py assembles them) or NVIDIA's SSD300 v1.1 on ResNet-50 (the
reference of tools/make_resnet_fixtures.py), 21 classes, inputs in [-1, 1] at their own side.

Usage: gpu_model.py [--warmup 10] [--iters 30] [--train-batch 32] [--infer-batches 1,32]
                    [--device cuda] [--model ssd300|ssdlite320|ssd300-resnet50]
Prints one JSON line per measurement. (`--device cpu` runs the same code on the CPU: a check of
the script, not a number to compare.)
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from make_model_fixtures import FULL, SSD, init, multibox_loss  # noqa: E402


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def unit(count, salt):
    i = torch.arange(count, dtype=torch.int64) + salt
    h = (i * 2654435761) % (2 ** 32)
    return (h.double() / 2.0 ** 32 * 2.0 - 1.0).float()


def priors():
    """SSD300's 8,732 priors (cx, cy, w, h), in the amdegroot order, clipped to [0, 1]."""
    fmaps, steps = [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    mins, maxs = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, f in enumerate(fmaps):
        for i in range(f):
            for j in range(f):
                fk = 300 / steps[k]
                cx, cy = (j + 0.5) / fk, (i + 0.5) / fk
                s = mins[k] / 300
                out.append([cx, cy, s, s])
                s2 = (s * (maxs[k] / 300)) ** 0.5
                out.append([cx, cy, s2, s2])
                for r in ratios[k]:
                    out.append([cx, cy, s * r ** 0.5, s / r ** 0.5])
                    out.append([cx, cy, s / r ** 0.5, s * r ** 0.5])
    return torch.tensor(out).clamp(0, 1)


def detect(loc, conf, prior, width=500, height=375):
    """Post-processing of a batch: boxes and scores per image, on the host at the end."""
    import torchvision

    boxes = torch.cat([
        prior[:, :2] + loc[..., :2] * 0.1 * prior[:, 2:],
        prior[:, 2:] * torch.exp(loc[..., 2:] * 0.2),
    ], dim=-1)
    boxes = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], dim=-1)
    scale = torch.tensor([width, height, width, height], device=loc.device, dtype=boxes.dtype)
    boxes = (boxes * scale).clamp(min=0)
    scores = F.softmax(conf.float(), dim=-1)[..., 1:]
    results = []
    for b in range(loc.shape[0]):
        s = scores[b]
        keep_boxes, keep_scores, keep_labels = [], [], []
        for c in range(s.shape[1]):
            sc = s[:, c]
            mask = sc > 0.01
            sc_c, idx = sc[mask], mask.nonzero().squeeze(1)
            if sc_c.numel() > 400:
                sc_c, top = sc_c.topk(400)
                idx = idx[top]
            keep_boxes.append(boxes[b, idx].float())
            keep_scores.append(sc_c)
            keep_labels.append(torch.full_like(idx, c + 1))
        bx, sx, lx = torch.cat(keep_boxes), torch.cat(keep_scores), torch.cat(keep_labels)
        keep = torchvision.ops.batched_nms(bx, sx, lx, 0.45)[:200]
        results.append((bx[keep].cpu(), sx[keep].cpu(), lx[keep].cpu()))
    return results


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(label, batch, warmup, iters, fn, extra, device):
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    per = (time.perf_counter() - start) / iters
    row = {"backend": "pytorch", "what": label, "batch": batch, "iters": iters,
           "ms_per_step": round(per * 1e3, 3), "images_per_s": round(batch / per, 1)}
    row.update(extra)
    print(json.dumps(row), flush=True)


def network(name):
    """(model, input side, input scale, priors) of a `--model` name, 21 classes."""
    if name == "ssdlite320":
        from make_lite_fixtures import Lite, build
        _, backbone, head, anchors, _ = build(1.0, 1.0, 21)
        model = Lite(backbone, head)
        sizes = [[20, 20], [10, 10], [5, 5], [3, 3], [2, 2], [1, 1]]
        return model, 320, 1.0, anchors._grid_default_boxes(sizes, [320, 320], dtype=torch.float32)
    if name == "ssd300-resnet50":
        from make_resnet_fixtures import FULL as RESNET, SSD300, default_boxes, ours

        class Outputs(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, x):
                return ours(self.model, x)

        width, blocks, extras, _ = RESNET
        return Outputs(SSD300(width, blocks, extras, 21)), 300, 1.0, default_boxes(torch.float32)
    blocks, fc, dilation, extras, classes = FULL
    model = SSD(blocks, fc, dilation, extras, classes)
    init(model, 0)  # He-normal convolutions, L2Norm scale in [10, 30)
    return model, 300, 100.0, priors()


def main():
    warmup, iters, train_batch = arg("--warmup", 10), arg("--iters", 30), arg("--train-batch", 32)
    device = torch.device(arg("--device", "cuda"))
    name = arg("--model", "ssd300")
    torch.backends.cudnn.benchmark = True
    for precision in ("fp32", "bf16-autocast"):
        extra = {"torch": torch.__version__, "precision": precision, "model": name,
                 "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"}
        autocast = precision == "bf16-autocast"
        model, side, scale, prior = network(name)
        model, prior = model.to(device), prior.to(device)
        n = prior.shape[0]
        model.train()
        x = (unit(train_batch * 3 * side * side, 1).reshape(train_batch, 3, side, side) * scale).to(device)
        i = torch.arange(train_batch * n)
        labels = torch.where(i % 431 == 0, i % 20 + 1, torch.zeros_like(i)).reshape(train_batch, n).to(device)
        loc_t = unit(train_batch * n * 4, 2).reshape(train_batch, n, 4).to(device)
        # lr 1e-4: at 1e-3 this fresh model on a fixed batch diverges within two steps (timing
        # only, but a NaN run is not the work being compared).
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        last = {}

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loc, conf = model(x)
            loss_l, loss_c = multibox_loss(loc.float(), conf.float(), labels, loc_t)
            loss = loss_l + loss_c
            loss.backward()
            optimizer.step()
            # As our trainer: the loss is read back every step (the log line and the NaN stop).
            last["loss"] = loss.item()

        measure("train_step", train_batch, warmup, iters, step, extra, device)
        print(json.dumps({"backend": "pytorch", "precision": precision, "final_loss": last["loss"]}))
        model.eval()
        for batch in [int(b) for b in arg("--infer-batches", "1,32").split(",")]:
            xb = (unit(batch * 3 * side * side, 1).reshape(batch, 3, side, side) * scale).to(device)

            def infer():
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loc, conf = model(xb)
                    detect(loc.float(), conf.float(), prior)

            measure("inference", batch, warmup, iters, infer, extra, device)
        del model, optimizer


if __name__ == "__main__":
    main()
