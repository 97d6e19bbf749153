#!/usr/bin/env python3
"""PyTorch reference trainer for `ssd train`'s whole-run parity (our own PyTorch code).

Trains the network a run of `ssd train --dump-batches DUMP` trained, from the same initial
weights, on exactly the batches it trained on, with the recipe as the paper, amdegroot and lufficc
define it:

  - SGD, momentum 0.9 (dampening 0), weight decay added to the gradient before the momentum
    (`torch.optim.SGD`);
  - with `caffe-bias`, convolution biases in a group of their own at twice the learning rate and
    without weight decay (Caffe's `lr_mult: 2, decay_mult: 0` on convolution layers; a batch
    norm's shift stays in the base group, as mmcv's `bias_lr_mult` rule has it);
  - learning rate of iteration i (0-based): `lr * gamma^(steps <= i)`, or the cosine, times
    `(i + 1) / warmup` while `i < warmup` (a linear warm-up);
  - global-norm gradient clipping when `clip-grad` > 0 (`torch.nn.utils.clip_grad_norm_`);
  - the MultiBox loss: smooth L1 (beta 1) over the positives, softmax cross-entropy over the
    positives and, per image, the `ceil(negpos-ratio x positives)` (at most P - 1) negatives of
    highest background loss, both divided by the positives of the batch (at least 1);
    `loss = alpha * loc + conf`;
  - batch norm in training mode (PyTorch's running statistics, momentum 0.1, eps 1e-5).

The network is built from the dump's `run.json` (the VGG family: SSD300/SSD512 and the small
preset, any widths), with PyTorch modules named as ssd names its parameters, so the final state
dict is a `.pth` that `ssd eval --trained-model X.pth --model M` reads as it is.

  python3 tools/train_reference.py DUMP OUT [--dtype float32|float64] [--burn-constants] [--threads N]

writes OUT/loss.csv (`iteration,loss,loc,conf,lr,grad_norm`, as `ssd train`'s loss CSV) and
OUT/final.pth (in the precision trained). Needs torch and numpy (tested with torch 2.9.0).
"""

import argparse
import csv
import glob
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The MultiBox loss of the parity fixtures (one SGD step of every network equals ours with it).
from make_model_fixtures import multibox_loss  # noqa: E402


# --- safetensors, read by hand (the format: u64 header length, JSON header, raw data) -----------

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """{name: numpy array} and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = np.frombuffer(data[:8], dtype="<u8")
    header = json.loads(data[8:8 + int(length)])
    body = data[8 + int(length):]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"]).copy()
    return out, metadata


# --- the network ---------------------------------------------------------------------------------

class L2Norm(nn.Module):
    """`x / sqrt(sum_c x^2 + 1e-10) * weight`: the epsilon inside the square root (Caffe)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))

    def forward(self, x):
        return x / (x.pow(2).sum(dim=1, keepdim=True) + 1e-10).sqrt() * self.weight.view(1, -1, 1, 1)


class VggSsd(nn.Module):
    """SSD on a VGG base as ssd's `SsdConfig` describes it: `vgg` (the base's convs, then conv6
    dilated and conv7), `norms` (with batch norm: one after each conv of `vgg`, then of
    `extras`), `l2norm` on the source block's output, `extras` in (reduce, source) pairs, and the
    `loc`/`conf` heads (3x3, padding 1)."""

    def __init__(self, model):
        super().__init__()
        base = model["base"]
        if base.get("type") != "vgg":
            sys.exit("train_reference.py: only the VGG networks (got %r)" % base.get("type"))
        vgg = base["vgg"]
        self.blocks = [len(b) for b in vgg["blocks"]]
        self.ceil_pool_block = vgg["ceil_pool_block"]
        self.source_block = vgg["source_block"]
        self.num_classes = model["num_classes"]
        convs, c = [], 3
        for block in vgg["blocks"]:
            for out in block:
                convs.append(nn.Conv2d(c, out, 3, padding=1))
                c = out
        source = vgg["blocks"][self.source_block][-1]
        fc, d = vgg["fc_channels"], vgg["fc_dilation"]
        convs.append(nn.Conv2d(c, fc, 3, padding=d, dilation=d))
        convs.append(nn.Conv2d(fc, fc, 1))
        self.vgg = nn.ModuleList(convs)
        extras, c = [], fc
        for e in base["extras"]:
            extras.append(nn.Conv2d(c, e["channels"], e["kernel"], stride=e["stride"], padding=e["padding"]))
            c = e["channels"]
        self.extras = nn.ModuleList(extras)
        self.norms = nn.ModuleList(
            [nn.BatchNorm2d(m.out_channels, eps=1e-5, momentum=0.1) for m in list(convs) + extras]
            if vgg["batch_norm"] else [])
        self.l2norm = L2Norm(source)
        sources = [source, fc] + [e["channels"] for e in base["extras"][1::2]]
        boxes = [2 + 2 * len(r) for r in model["priors"]["aspect_ratios"]]
        self.loc = nn.ModuleList([nn.Conv2d(s, b * 4, 3, padding=1) for s, b in zip(sources, boxes)])
        self.conf = nn.ModuleList(
            [nn.Conv2d(s, b * self.num_classes, 3, padding=1) for s, b in zip(sources, boxes)])

    def conv_relu(self, i, conv, x):
        y = conv(x)
        if self.norms:
            y = self.norms[i](y)
        return F.relu(y)

    def forward(self, x):
        convs = list(self.vgg) + list(self.extras)
        k, sources, last = 0, [], len(self.blocks) - 1
        for b, n in enumerate(self.blocks):
            for _ in range(n):
                x = self.conv_relu(k, convs[k], x)
                k += 1
            if b == self.source_block:
                sources.append(self.l2norm(x))
            if b < last:
                x = F.max_pool2d(x, 2, 2, ceil_mode=(b == self.ceil_pool_block))
            else:
                x = F.max_pool2d(x, 3, 1, 1)
        for _ in range(2):
            x = self.conv_relu(k, convs[k], x)
            k += 1
        sources.append(x)
        for j in range(len(self.extras)):
            x = self.conv_relu(k, convs[k], x)
            k += 1
            if j % 2 == 1:
                sources.append(x)
        n = x.shape[0]
        loc = torch.cat([h(s).permute(0, 2, 3, 1).reshape(n, -1, 4) for s, h in zip(sources, self.loc)], 1)
        conf = torch.cat([h(s).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
                          for s, h in zip(sources, self.conf)], 1)
        return loc, conf


# --- the recipe ----------------------------------------------------------------------------------

def lr_at(config, i):
    warm = (i + 1) / config["warmup"] if config["warmup"] > 0 and i < config["warmup"] else 1.0
    if config["lr-schedule"] == "cosine":
        progress = min(i, config["iterations"]) / max(config["iterations"], 1)
        scheduled = config["lr"] * (1 + math.cos(math.pi * progress)) / 2
    else:
        scheduled = config["lr"] * config["gamma"] ** sum(1 for s in config["lr-decay"] if i >= s)
    return scheduled * warm


def param_groups(net, config, weight_decay):
    """The base group (weight decay) and, with caffe-bias, the convolution biases (no decay; the
    learning rate doubled per step)."""
    conv_biases = [m.bias for m in net.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    ids = {id(p) for p in conv_biases} if config["caffe-bias"] else set()
    base = [p for p in net.parameters() if id(p) not in ids]
    groups = [{"params": base, "weight_decay": weight_decay, "lr_mult": 1.0}]
    if config["caffe-bias"]:
        groups.append({"params": conv_biases, "weight_decay": 0.0, "lr_mult": 2.0})
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dump", help="the folder of `ssd train --dump-batches`")
    parser.add_argument("out", help="where loss.csv and final.pth go")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--burn-constants", action="store_true",
                        help="momentum and weight decay rounded to float32, as Burn's SGD holds them "
                             "(burn-optim 0.22: 0.9 -> 0.899999976, 5e-4 -> 5.0000002e-4), to isolate "
                             "every other difference in a float64 comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    dtype = getattr(torch, args.dtype)
    with open(os.path.join(args.dump, "run.json")) as f:
        run = json.load(f)
    config, start = run["config"], run["iteration"]
    # In the precision asked for before the weights are copied in (a float32 module would round
    # float64 weights).
    net = VggSsd(run["model"]).to(dtype)
    initial, _ = read_safetensors(os.path.join(args.dump, "weights_%06d.safetensors" % start))
    missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in initial.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit("train_reference.py: the network does not fit the dumped weights: missing %s, unused %s"
                 % (missing, unexpected))
    net = net.train()
    momentum, weight_decay = config["momentum"], config["weight-decay"]
    if args.burn_constants:
        momentum, weight_decay = float(np.float32(momentum)), float(np.float32(weight_decay))
    optimizer = torch.optim.SGD(param_groups(net, config, weight_decay), lr=config["lr"], momentum=momentum,
                                dampening=0.0)
    batches = sorted(glob.glob(os.path.join(args.dump, "batch_*.safetensors")))
    if not batches:
        sys.exit("train_reference.py: no batch_*.safetensors in %s" % args.dump)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for path in batches:
        tensors, meta = read_safetensors(path)
        iteration = int(meta["iteration"])
        if iteration != start + len(rows) + 1:
            sys.exit("train_reference.py: %s is iteration %d, expected %d" % (path, iteration, start + len(rows) + 1))
        images = torch.from_numpy(tensors["images"]).to(dtype)
        labels = torch.from_numpy(tensors["labels"])
        loc_t = torch.from_numpy(tensors["locations"]).to(dtype)
        loc, conf = net(images)
        loss_l, loss_c = multibox_loss(loc, conf, labels, loc_t, config["negpos-ratio"])
        loss = config["alpha"] * loss_l + loss_c
        optimizer.zero_grad()
        loss.backward()
        params = [p for p in net.parameters() if p.grad is not None]
        if config["clip-grad"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, config["clip-grad"])
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        lr = lr_at(config, iteration - 1)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        optimizer.step()
        rows.append((iteration, loss.item(), loss_l.item(), loss_c.item(), lr, norm.item()))
    with open(os.path.join(args.out, "loss.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iteration", "loss", "loc", "conf", "lr", "grad_norm"])
        w.writerows(rows)
    torch.save({k: v.detach() for k, v in net.state_dict().items()}, os.path.join(args.out, "final.pth"))
    print("%s: %d iterations (%s), loss %.4f -> %.4f" % (args.out, len(rows), args.dtype, rows[0][1], rows[-1][1]))


if __name__ == "__main__":
    main()
