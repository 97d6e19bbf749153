#!/usr/bin/env python3
"""PyTorch reference of NVIDIA's SSD300 v1.1 (ResNet-50) for ssd-model's parity tests.

The architecture, written here from NVIDIA's description (DeepLearningExamples
`PyTorch/Detection/SSD`, `ssd/model.py` and `ssd/utils.py`):

  * torchvision's ResNet-50 (v1.5 bottlenecks: the stride on the 3x3 conv) up to `layer3`, held
    as NVIDIA holds it: `feature_extractor.feature_extractor` = Sequential(conv1, bn1, relu,
    maxpool, layer1, layer2, layer3); `layer3`'s first block has stride 1 (its 3x3 conv and its
    downsample), so the first source is 38x38 with 1,024 channels at 300 px;
  * five `additional_blocks`: Sequential(1x1 conv, BN, ReLU, 3x3 conv, BN, ReLU), bias-free convs,
    the 3x3 with stride 2 and padding 1 in the first three and valid (stride 1, no padding) in the
    last two; middle widths 256, 256, 128, 128, 128, outputs 512, 512, 256, 256, 256;
  * 3x3 heads `loc.i` / `conf.i` with 4, 6, 6, 6, 4, 4 boxes, emitting `[N, 4, P]` and `[N, C, P]`
    (`view(N, 4, -1)` of each head: prior order box, row, column within a level);
  * default boxes for 300 px: feature sizes 38, 19, 10, 5, 3, 1, steps 8, 16, 32, 64, 100, 300,
    scales 21, 45, 99, 153, 207, 261, 315, ratios [2], [2, 3] x 3, [2], [2], clipped to [0, 1].

Where it could differ from NVIDIA's code: their checkpoint may come from a ResNet built with
`torchvision.models.resnet50` of another torchvision (same keys since 0.2); their `_init_weights`
(Xavier uniform for the extras and heads) only matters for training from scratch; their
training uses channels-last and AMP, which change rounding, not the function; their loss
normalises per image before the batch mean (ssd-model's MultiBox loss divides by the batch's
positives), so only the network is compared here.

`--check` also builds torchvision's `resnet50` with the same stride change, loads this module's
weights into it and compares the 38x38 map, so the reference is tied to torchvision's ResNet.

Outputs, in ssd-model's layout (levels in order, within a level row, column, box; channels box
by box): see `make_lite_fixtures.py`, which this mirrors:

  <out>/model.pth     a training checkpoint as NVIDIA's script writes one: {"epoch", "iteration",
                      "model": state dict with `module.` prefixes (DistributedDataParallel)}
  <out>/expected.pth  `loc_sub`, `conf_sub` (every 7th prior), `priors`, training-mode outputs,
                      `loss_loc`, `loss_conf`, and `f32_error.*` (PyTorch float32's distance from
                      the float64 reference)
  <out>/updated.pth   the state dict (no prefix) after one SGD step (lr 1e-2, momentum 0.9,
                      weight decay 5e-4)
  <out>/backbone.pth  the ResNet in torchvision's ImageNet layout (`conv1`, `bn1`, `layer1..3`,
                      plus a `layer4` tensor and `fc`, which a backbone load must leave out)

  python3 tools/make_resnet_fixtures.py            # width 16, blocks 2, 2, 2, 6 classes (committed)
  python3 tools/make_resnet_fixtures.py --full OUT [--classes N] # ResNet-50 (width 64, blocks 3, 4, 6), 81 classes
  python3 tools/make_resnet_fixtures.py --check    # the reference against torchvision's resnet50

Needs torch (and torchvision for --check); tested with 2.9.0 / 0.24.0.
"""

import copy
import itertools
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_lite_fixtures import randomise_norm, write_reference  # noqa: E402
from make_model_fixtures import hashed_unit, multibox_loss, targets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 2
SIZE = 300
BOXES = [4, 6, 6, 6, 4, 4]
NUM_PRIORS = 8732
# (stem width, blocks of layer1..3, extra (middle, output) widths, classes)
REDUCED = (16, [2, 2, 2], [(32, 64), (32, 64), (16, 32), (16, 32), (16, 32)], 6)
FULL = (64, [3, 4, 6], [(256, 512), (256, 512), (128, 256), (128, 256), (128, 256)], 81)
NEG_POS_RATIO = 3


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (1x1, 3x3 with the stride, 1x1 to 4x), same names."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def layer(inplanes, planes, blocks, stride):
    return nn.Sequential(*[Bottleneck(inplanes if i == 0 else planes * 4, planes, stride if i == 0 else 1)
                           for i in range(blocks)])


class Backbone(nn.Module):
    """NVIDIA's `ResNet`: the ResNet up to layer3 as one Sequential, layer3 at stride 1."""

    def __init__(self, width, blocks):
        super().__init__()
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            layer(width, width, blocks[0], 1),
            layer(width * 4, width * 2, blocks[1], 2),
            layer(width * 8, width * 4, blocks[2], 1),
        )
        self.out_channels = width * 16

    def forward(self, x):
        return self.feature_extractor(x)


class SSD300(nn.Module):
    """NVIDIA's `SSD300` with its parameter names."""

    def __init__(self, width, blocks, extras, classes):
        super().__init__()
        self.feature_extractor = Backbone(width, blocks)
        self.label_num = classes
        channels = [self.feature_extractor.out_channels] + [o for _, o in extras]
        self.additional_blocks = nn.ModuleList()
        for i, ((mid, out), inp) in enumerate(zip(extras, channels)):
            stride, padding = (2, 1) if i < 3 else (1, 0)
            self.additional_blocks.append(nn.Sequential(
                nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, out, 3, stride=stride, padding=padding, bias=False),
                nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
        self.loc = nn.ModuleList(nn.Conv2d(c, b * 4, 3, padding=1) for c, b in zip(channels, BOXES))
        self.conf = nn.ModuleList(nn.Conv2d(c, b * classes, 3, padding=1) for c, b in zip(channels, BOXES))

    def sources(self, x):
        x = self.feature_extractor(x)
        feed = [x]
        for block in self.additional_blocks:
            x = block(x)
            feed.append(x)
        return feed

    def forward(self, x):
        """NVIDIA's outputs: `[N, 4, P]`, `[N, C, P]`."""
        locs, confs = [], []
        for s, l, c in zip(self.sources(x), self.loc, self.conf):
            locs.append(l(s).reshape(s.shape[0], 4, -1))
            confs.append(c(s).reshape(s.shape[0], self.label_num, -1))
        return torch.cat(locs, 2).contiguous(), torch.cat(confs, 2).contiguous()


def ours(model, x):
    """The same outputs in ssd-model's layout: `[N, P, 4]`, `[N, P, C]`, within a level row,
    column, box; `[N, 4, A, H, W]` to `[N, H, W, A, 4]`."""
    locs, confs = [], []
    for s, l, c, a in zip(model.sources(x), model.loc, model.conf, BOXES):
        n, _, h, w = s.shape
        locs.append(l(s).reshape(n, 4, a, h, w).permute(0, 3, 4, 2, 1).reshape(n, -1, 4))
        confs.append(c(s).reshape(n, model.label_num, a, h, w).permute(0, 3, 4, 2, 1)
                     .reshape(n, -1, model.label_num))
    return torch.cat(locs, 1), torch.cat(confs, 1)


def default_boxes(dtype):
    """NVIDIA's `dboxes300_coco()` (cx, cy, w, h), reordered as ssd-model lists priors."""
    fig, sizes, steps = 300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    scales, ratios = [21, 45, 99, 153, 207, 261, 315], [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, size in enumerate(sizes):
        fk = fig / steps[k]
        s1, s2 = scales[k] / fig, math.sqrt(scales[k] * scales[k + 1]) / fig
        shapes = [(s1, s1), (s2, s2)]
        for r in ratios[k]:
            shapes += [(s1 * math.sqrt(r), s1 / math.sqrt(r)), (s1 / math.sqrt(r), s1 * math.sqrt(r))]
        # NVIDIA lists a level box by box (each over every cell); ours cell by cell.
        for i, j in itertools.product(range(size), repeat=2):
            for w, h in shapes:
                out.append(((j + 0.5) / fk, (i + 0.5) / fk, w, h))
    return torch.tensor(out, dtype=dtype).clamp(0, 1)


def randomise(model, seed):
    """torchvision's ResNet init scales (He normal over fan-out), NVIDIA's Xavier uniform for the
    extras and heads, seeded; biases, batch norm scales, shifts and running statistics random."""
    g = torch.Generator().manual_seed(seed)
    xavier = set()
    for part in (model.additional_blocks, model.loc, model.conf):
        xavier.update(id(m) for m in part.modules())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                if id(m) in xavier:
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 * bound - bound)
                else:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                randomise_norm(m, g)


IMAGENET = {0: "conv1", 1: "bn1", 4: "layer1", 5: "layer2", 6: "layer3"}


def imagenet_state(model):
    """The backbone in torchvision's ImageNet `resnet50` layout."""
    prefix = "feature_extractor.feature_extractor."
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith(prefix):
            index, rest = k[len(prefix):].split(".", 1)
            state[IMAGENET[int(index)] + "." + rest] = v
    return state


def check():
    """The reference's backbone equals torchvision's resnet50 with NVIDIA's stride change."""
    from torchvision.models import resnet50
    model = SSD300(*FULL)
    randomise(model, seed=1)
    tv = resnet50(weights=None)
    tv.layer3[0].conv2.stride = (1, 1)
    tv.layer3[0].downsample[0].stride = (1, 1)
    missing, unused = tv.load_state_dict(imagenet_state(model), strict=False)
    assert not unused and all(k.startswith(("layer4.", "fc.")) for k in missing), (missing, unused)
    tv_features = nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool, tv.layer1, tv.layer2, tv.layer3).eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        a, b = model.eval().feature_extractor(x), tv_features(x)
    assert a.shape == (1, 1024, 38, 38), a.shape
    print("reference vs torchvision resnet50 (layer3 at stride 1): max |diff| %.3g, shapes %s; "
          "sources %s, %d priors" % ((a - b).abs().max().item(), tuple(a.shape),
                                     [tuple(s.shape[-2:]) for s in model.sources(x)], default_boxes(torch.float64).shape[0]))


def run(model, x, labels, loc_t, dtype):
    model = copy.deepcopy(model).to(dtype)
    x = x.to(dtype)
    model.eval()
    with torch.no_grad():
        loc, conf = ours(model, x)
    model.train()
    train_loc, train_conf = ours(model, x)
    loss_l, loss_c = multibox_loss(train_loc, train_conf, labels, loc_t.to(dtype), neg_pos_ratio=NEG_POS_RATIO)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4)
    optimizer.zero_grad()
    (loss_l + loss_c).backward()
    optimizer.step()
    return {
        "loc": loc, "conf": conf, "train_loc": train_loc.detach(), "train_conf": train_conf.detach(),
        "loss_loc": loss_l.detach(), "loss_conf": loss_c.detach(), "state": model.state_dict(),
    }


def main():
    if "--check" in sys.argv:
        check()
        return
    full = "--full" in sys.argv
    out = sys.argv[sys.argv.index("--full") + 1] if full else os.path.join(
        HERE, "..", "crates", "ssd-model", "tests", "fixtures", "resnet_reduced")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    width, blocks, extras, classes = FULL if full else REDUCED
    if "--classes" in sys.argv:
        classes = int(sys.argv[sys.argv.index("--classes") + 1])
    model = SSD300(width, blocks, extras, classes)
    randomise(model, seed=50)
    state = model.state_dict()
    torch.save({"epoch": 1, "iteration": 100, "model": {"module." + k: v for k, v in state.items()}},
               os.path.join(out, "model.pth"))
    backbone = imagenet_state(model)
    backbone["layer4.0.conv1.weight"] = torch.zeros(width * 8, width * 16, 1, 1)
    backbone["fc.weight"] = torch.zeros(10, width * 32)
    backbone["fc.bias"] = torch.zeros(10)
    torch.save(backbone, os.path.join(out, "backbone.pth"))

    x = torch.from_numpy(hashed_unit(BATCH * 3 * SIZE * SIZE, 0).reshape(BATCH, 3, SIZE, SIZE))
    labels, loc_t = targets(classes, NUM_PRIORS)
    initial = {k: v.double() for k, v in state.items() if v.is_floating_point()}
    r64 = run(model, x, labels, loc_t, torch.float64)
    r32 = run(model, x, labels, loc_t, torch.float32)
    assert r64["loc"].shape[1] == NUM_PRIORS, r64["loc"].shape
    expected, worst = write_reference(out, r64, r32, initial, default_boxes(torch.float64))
    print("wrote %s: %d priors, loss_loc %.6f loss_conf %.6f, |loc| max %.3f, |conf| max %.3f, "
          "%d parameters; float32 vs float64: outputs %.2e, step %.2e (%s)" % (
              out, NUM_PRIORS, r64["loss_loc"].item(), r64["loss_conf"].item(),
              r64["loc"].abs().max().item(), r64["conf"].abs().max().item(),
              sum(p.numel() for p in model.parameters()),
              max(expected["f32_error." + k].item() for k in ("loc", "conf")), worst[0], worst[1]))


if __name__ == "__main__":
    main()
