#!/usr/bin/env python3
"""PyTorch reference for ssd-model's parity tests (our own PyTorch code, amdegroot's layout).

Builds an SSD300-topology network in amdegroot's state-dict layout (`vgg.N` with its sparse
Sequential indices, `L2Norm.weight`, `extras.N`, `loc.N`, `conf.N`) with a seeded random init
(L2Norm scale not constant, biases not zero), runs it on a fixed input, computes the MultiBox loss
on fixed targets, takes one SGD step (lr 1e-3, momentum 0.9, weight decay 5e-4) and writes:

  <out>/model.pth     the initial state dict
  <out>/expected.pth  `loc` and `conf` for every 7th prior (`loc_sub` [N, ceil(P/7), 4],
                      `conf_sub`), `loss_loc`, `loss_conf` ([1] each)
  <out>/updated.pth   the state dict after the SGD step
  <out>/reducedfc.pth the VGG part in amdegroot's vgg16_reducedfc.pth layout

The input and targets are formulas the Rust test computes too (see `inputs()` and `targets()`).

  python3 tools/make_model_fixtures.py            # reduced: narrow channels, committed fixture
  python3 tools/make_model_fixtures.py --full OUT # the real SSD300 (VGG16 widths), ~100 MB, not committed;
                                                  # also torchvision's ssd300_vgg16 with random weights
                                                  # (torchvision.pth, torchvision_expected.pth)

Needs torch (tested with 2.9.0).
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# (VGG blocks, fc channels, fc dilation, extras [(out, kernel, stride, padding)], classes)
REDUCED = (
    [[4, 4], [8, 8], [16, 16, 16], [32, 32, 32], [32, 32, 32]],
    64,
    6,
    [(16, 1, 1, 0), (32, 3, 2, 1), (8, 1, 1, 0), (16, 3, 2, 1), (8, 1, 1, 0), (16, 3, 1, 0), (8, 1, 1, 0), (16, 3, 1, 0)],
    6,
)
FULL = (
    [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    1024,
    6,
    [(256, 1, 1, 0), (512, 3, 2, 1), (128, 1, 1, 0), (256, 3, 2, 1), (128, 1, 1, 0), (256, 3, 1, 0), (128, 1, 1, 0), (256, 3, 1, 0)],
    21,
)
BOXES = [4, 6, 6, 6, 4, 4]
NUM_PRIORS = 8732
BATCH = 2
SIZE = 300


class L2Norm(nn.Module):
    def __init__(self, channels, eps=1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.eps = eps

    def forward(self, x):
        # The epsilon inside the square root (Caffe), not added to the norm (amdegroot).
        norm = (x.pow(2).sum(dim=1, keepdim=True) + self.eps).sqrt()
        return x / norm * self.weight.view(1, -1, 1, 1)


class SSD(nn.Module):
    def __init__(self, blocks, fc, dilation, extras, classes):
        super().__init__()
        layers, c = [], 3
        self.source_after = None
        for b, block in enumerate(blocks):
            for out in block:
                layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
                c = out
            if b == 3:
                self.source_after = len(layers)  # conv4_3's ReLU is the layer before this index
                conv4_3 = c
            if b < len(blocks) - 1:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=(b == 2)))
        layers += [nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, fc, 3, padding=dilation, dilation=dilation), nn.ReLU(), nn.Conv2d(fc, fc, 1), nn.ReLU()]
        self.vgg = nn.ModuleList(layers)
        self.L2Norm = L2Norm(conv4_3)
        ex, c = [], fc
        for out, k, s, p in extras:
            ex.append(nn.Conv2d(c, out, k, stride=s, padding=p))
            c = out
        self.extras = nn.ModuleList(ex)
        sources = [conv4_3, fc] + [e[0] for e in extras[1::2]]
        self.loc = nn.ModuleList([nn.Conv2d(s, b * 4, 3, padding=1) for s, b in zip(sources, BOXES)])
        self.conf = nn.ModuleList([nn.Conv2d(s, b * classes, 3, padding=1) for s, b in zip(sources, BOXES)])
        self.classes = classes

    def forward(self, x):
        sources = []
        for k in range(self.source_after):
            x = self.vgg[k](x)
        sources.append(self.L2Norm(x))
        for k in range(self.source_after, len(self.vgg)):
            x = self.vgg[k](x)
        sources.append(x)
        for k, conv in enumerate(self.extras):
            x = F.relu(conv(x))
            if k % 2 == 1:
                sources.append(x)
        n = x.shape[0]
        loc = torch.cat([l(s).permute(0, 2, 3, 1).reshape(n, -1, 4) for s, l in zip(sources, self.loc)], 1)
        conf = torch.cat([c(s).permute(0, 2, 3, 1).reshape(n, -1, self.classes) for s, c in zip(sources, self.conf)], 1)
        return loc, conf


def init(model, seed):
    g = torch.Generator().manual_seed(seed)
    heads = set(id(m) for m in list(model.loc) + list(model.conf))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            std = math.sqrt(2.0 / fan_in) * (0.3 if id(m) in heads else 1.0)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
    with torch.no_grad():
        model.L2Norm.weight.copy_(torch.rand(model.L2Norm.weight.shape, generator=g) * 20 + 10)


def hashed_unit(count, salt):
    """Deterministic values in [-1, 1): ((i + salt) * 2654435761 mod 2^32) / 2^32 * 2 - 1."""
    i = np.arange(count, dtype=np.uint64) + np.uint64(salt)
    h = (i * np.uint64(2654435761)) % np.uint64(2 ** 32)
    return (h.astype(np.float64) / 2.0 ** 32 * 2.0 - 1.0).astype(np.float32)


def inputs():
    return torch.from_numpy(hashed_unit(BATCH * 3 * SIZE * SIZE, 0).reshape(BATCH, 3, SIZE, SIZE))


def targets(classes, num_priors=NUM_PRIORS):
    n = np.arange(BATCH, dtype=np.int64)[:, None]
    p = np.arange(num_priors, dtype=np.int64)[None, :]
    positive = (p + 3 * n) % 53 == 0
    labels = np.where(positive, (p * 7 + n * 13) % (classes - 1) + 1, 0).astype(np.int64)
    k = np.arange(4, dtype=np.float64)[None, None, :]
    loc_t = (np.sin(p[..., None] * 0.37 + k * 1.1 + n[..., None]) * 2.0).astype(np.float32)
    return torch.from_numpy(labels), torch.from_numpy(loc_t)


def multibox_loss(loc, conf, labels, loc_t, neg_pos_ratio=3):
    pos = labels > 0
    num_pos = pos.sum().clamp(min=1).float()
    loss_l = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum", beta=1.0)
    log_probs = F.log_softmax(conf, dim=2)
    ce = -log_probs.gather(2, labels.unsqueeze(2)).squeeze(2)
    mining = (-log_probs[..., 0]).detach().clone()
    mining[pos] = 0
    _, order = mining.sort(dim=1, descending=True)
    _, rank = order.sort(dim=1)
    num_neg = (neg_pos_ratio * pos.sum(dim=1, keepdim=True)).clamp(max=labels.shape[1] - 1)
    neg = rank < num_neg
    loss_c = ce[pos | neg].sum()
    return loss_l / num_pos, loss_c / num_pos


def torchvision_reference(out):
    """torchvision's real ssd300_vgg16 (21 classes) with a seeded random init: its state dict and
    its raw head outputs (backbone + head, no transform) for the same input, every 7th prior."""
    import torchvision

    tv = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    g = torch.Generator().manual_seed(301)
    with torch.no_grad():
        for name, p in tv.named_parameters():
            if name.endswith("weight") and p.dim() == 4:
                fan_in = p[0].numel()
                scale = 0.3 if name.startswith("head.") else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in) * scale)
            elif name.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
            elif name == "backbone.scale_weight":
                p.copy_(torch.rand(p.shape, generator=g) * 20 + 10)
    tv.eval()
    torch.save(tv.state_dict(), os.path.join(out, "torchvision.pth"))
    with torch.no_grad():
        features = list(tv.backbone(inputs()).values())
        head = tv.head(features)
    torch.save({
        "loc_sub": head["bbox_regression"][:, ::7, :].contiguous(),
        "conf_sub": head["cls_logits"][:, ::7, :].contiguous(),
    }, os.path.join(out, "torchvision_expected.pth"))


def vgg16_reference(out):
    """torchvision's ImageNet vgg16 with a seeded random init (~550 MB) and, computed here with
    torch indexing, the paper's decimation of its fc6/fc7 into conv6/conv7."""
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    g = torch.Generator().manual_seed(302)
    with torch.no_grad():
        for p in vgg.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    sd = vgg.state_dict()
    torch.save(sd, os.path.join(out, "vgg16.pth"))
    fc6 = sd["classifier.0.weight"].view(4096, 512, 7, 7)[::4, :, ::3, ::3].contiguous()
    fc7 = sd["classifier.3.weight"][::4, ::4].contiguous().view(1024, 1024, 1, 1)
    torch.save({
        "conv6.weight": fc6,
        "conv6.bias": sd["classifier.0.bias"][::4].contiguous(),
        "conv7.weight": fc7,
        "conv7.bias": sd["classifier.3.bias"][::4].contiguous(),
        "conv1_1.weight": sd["features.0.weight"],
        "conv5_3.weight": sd["features.28.weight"],
    }, os.path.join(out, "vgg16_expected.pth"))


def main():
    full = "--full" in sys.argv
    out = sys.argv[sys.argv.index("--full") + 1] if full else os.path.join(HERE, "..", "crates", "ssd-model", "tests", "fixtures", "amdegroot_reduced")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    blocks, fc, dilation, extras, classes = FULL if full else REDUCED
    model = SSD(blocks, fc, dilation, extras, classes)
    init(model, seed=300)
    torch.save(model.state_dict(), os.path.join(out, "model.pth"))
    # The same VGG part in amdegroot's vgg16_reducedfc.pth layout (`0.weight` .. `33.bias`).
    torch.save({k[len("vgg."):]: v for k, v in model.state_dict().items() if k.startswith("vgg.")},
               os.path.join(out, "reducedfc.pth"))

    x = inputs()
    labels, loc_t = targets(classes)
    loc, conf = model(x)
    assert loc.shape == (BATCH, NUM_PRIORS, 4), loc.shape
    loss_l, loss_c = multibox_loss(loc, conf, labels, loc_t)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    optimizer.zero_grad()
    (loss_l + loss_c).backward()
    optimizer.step()

    expected = {
        "loc_sub": loc.detach()[:, ::7, :].contiguous(),
        "conf_sub": conf.detach()[:, ::7, :].contiguous(),
        "loss_loc": loss_l.detach().reshape(1),
        "loss_conf": loss_c.detach().reshape(1),
    }
    torch.save(expected, os.path.join(out, "expected.pth"))
    torch.save(model.state_dict(), os.path.join(out, "updated.pth"))
    if full:
        torchvision_reference(out)
        vgg16_reference(out)
    print("wrote %s: loss_loc %.6f loss_conf %.6f, |loc| max %.3f, |conf| max %.3f, %d parameters" % (
        out, loss_l.item(), loss_c.item(), loc.abs().max().item(), conf.abs().max().item(),
        sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":
    main()
