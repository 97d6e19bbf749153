#!/usr/bin/env python3
"""torchvision reference for ssd-model's SSDLite parity tests.

Builds SSDLite on MobileNetV3-Large from torchvision's own modules (`mobilenet_v3_large`, the
SSDLite feature extractor, `SSDLiteHead`, `DefaultBoxGenerator`), exactly as
`ssdlite320_mobilenet_v3_large` assembles them, with a seeded random init that also randomises the
batch norms' scales, shifts and running statistics; runs it on the parity input of
`make_model_fixtures.py` and writes:

  <out>/model.pth      the state dict (torchvision's `ssdlite320_mobilenet_v3_large` keys)
  <out>/expected.pth   in evaluation mode: `loc_sub` and `conf_sub` (every 7th prior of the raw
                       head outputs), `priors` (the default boxes, cx cy w h in [0, 1]),
                       torchvision's final detections (`det.*`, see `final_detections`);
                       in training mode (batch statistics): `train_loc_sub`, `train_conf_sub`,
                       `loss_loc`, `loss_conf` ([1] each) of the MultiBox loss on the fixed targets
                       (every negative kept: no hard-negative cut); `f32_error.*`: how far
                       PyTorch's own float32 run lands from these values
  <out>/updated.pth    the state dict after one SGD step on that loss (lr 1e-2, momentum 0.9,
                       weight decay 4e-5), running statistics included

All of it is computed in float64 from the float32 weights of model.pth (then stored as float32).
  <out>/backbone.pth   the MobileNetV3 part in the ImageNet `mobilenet_v3_large` layout
                       (`features.N`, with a classifier), for backbone loading

  python3 tools/make_lite_fixtures.py            # width 0.25, reduced tail: committed fixture
  python3 tools/make_lite_fixtures.py --full OUT [--classes N] # the real ssdlite320_mobilenet_v3_large
                                                 # (width 1, 91 classes, ~14 MB), not committed

Needs torch and torchvision (tested with 2.9.0 / 0.24.0).
"""

import copy
import math
import os
import sys
from functools import partial

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import hashed_unit, multibox_loss, targets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 2
SIZE = 320
# (backbone width, extractor width for the extra blocks, classes)
REDUCED = (0.25, 0.25, 6)
FULL = (1.0, 1.0, 91)
NEG_POS_RATIO = 1000


def build(width, extra_width, classes):
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead

    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    mobilenet = mobilenet_v3_large(weights=None, norm_layer=norm_layer, reduced_tail=True, width_mult=width)
    features = mobilenet.features
    # As torchvision's `_mobilenet_extractor`: C4 is the last strided block.
    c4 = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)][-1]
    backbone = SSDLiteFeatureExtractorMobileNet(features, c4, norm_layer, width_mult=extra_width)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    channels = det_utils.retrieve_out_channels(backbone, (SIZE, SIZE))
    head = SSDLiteHead(channels, anchors.num_anchors_per_location(), classes, norm_layer)
    return mobilenet, backbone, head, anchors, c4


class Lite(nn.Module):
    """Backbone and head as `torchvision.models.detection.SSD` holds them (same state dict keys)."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        head = self.head(list(self.backbone(x).values()))
        return head["bbox_regression"], head["cls_logits"]


def randomise(model, seed):
    """torchvision's own init scales (MobileNetV3: He normal over fan-out; SSDLite extras and
    heads: normal with std 0.03), seeded, with biases and every batch norm's scale, shift and
    running statistics random too, so that evaluation mode uses statistics of its own."""
    g = torch.Generator().manual_seed(seed)
    lite = set()
    for part in (model.backbone.extra, model.head):
        lite.update(id(m) for m in part.modules())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                if id(m) in lite:
                    std = 0.03
                else:
                    std = math.sqrt(2.0 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1] / m.groups))
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                randomise_norm(m, g)


def randomise_norm(m, g):
    """A batch norm's scale, shift and running statistics, random (seeded by `g`)."""
    c = m.num_features
    with torch.no_grad():
        m.weight.copy_(torch.rand(c, generator=g) * 0.4 + 0.8)
        m.bias.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
        m.running_mean.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
        m.running_var.copy_(torch.rand(c, generator=g) * 1.0 + 0.5)


def inputs():
    return torch.from_numpy(hashed_unit(BATCH * 3 * SIZE * SIZE, 0).reshape(BATCH, 3, SIZE, SIZE))


def main():
    full = "--full" in sys.argv
    out = sys.argv[sys.argv.index("--full") + 1] if full else os.path.join(
        HERE, "..", "crates", "ssd-model", "tests", "fixtures", "ssdlite_reduced")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    width, extra_width, classes = FULL if full else REDUCED
    if "--classes" in sys.argv:
        classes = int(sys.argv[sys.argv.index("--classes") + 1])
    mobilenet, backbone, head, anchors, c4 = build(width, extra_width, classes)
    model = Lite(backbone, head)
    randomise(model, seed=320)
    torch.save(model.state_dict(), os.path.join(out, "model.pth"))
    # The same MobileNetV3 in the ImageNet layout: `features` as built (its C4 block now shared
    # with the detector), the classifier left at its init.
    torch.save(mobilenet.state_dict(), os.path.join(out, "backbone.pth"))

    x = inputs()
    labels, loc_t = targets(classes, 3234)
    initial = {k: v.double() for k, v in model.state_dict().items() if v.is_floating_point()}
    # The reference is computed in float64; PyTorch's own float32 run gives the yardstick: how far
    # float32 arithmetic alone lands from it (gradients through a deep random network with batch
    # statistics lose a few digits).
    r64 = run(model, anchors, x, labels, loc_t, torch.float64)
    r32 = run(model, anchors, x, labels, loc_t, torch.float32)
    num_priors = r64["loc"].shape[1]
    assert r64["priors"].shape == (num_priors, 4), (r64["priors"].shape, num_priors)
    expected, worst = write_reference(out, r64, r32, initial, r64["priors"],
                                      final_detections(model, anchors, x, r32, classes))
    print("wrote %s: C4 block %d, maps %s, %d priors, loss_loc %.6f loss_conf %.6f, |loc| max %.3f, "
          "|conf| max %.3f, %d parameters; float32 vs float64: outputs %.2e, step %.2e (%s)" % (
              out, c4, r64["sizes"], num_priors, r64["loss_loc"].item(), r64["loss_conf"].item(),
              r64["loc"].abs().max().item(), r64["conf"].abs().max().item(),
              sum(p.numel() for p in model.parameters()),
              max(expected["f32_error." + k].item() for k in ("loc", "conf")), worst[0], worst[1]))


def final_detections(model, anchors, x, r32, classes):
    """torchvision's own post-processing (`SSD.postprocess_detections` with
    `ssdlite320_mobilenet_v3_large`'s settings: score 0.001, 300 candidates per class, NMS 0.55,
    300 per image) of PyTorch's float32 evaluation outputs on the 320x320 input: `det_loc` and
    `det_conf` (those outputs, whole) and `det.B` (`[K, 6]`: x1, y1, x2, y2 in pixels, score,
    label) for each image."""
    from torchvision.models.detection.image_list import ImageList
    from torchvision.models.detection.ssd import SSD

    ssd = SSD(model.backbone, anchors, (SIZE, SIZE), classes, head=model.head, score_thresh=0.001,
              nms_thresh=0.55, detections_per_img=300, topk_candidates=300).eval()
    shapes = [(SIZE, SIZE)] * BATCH
    with torch.no_grad():
        features = list(model.backbone(x).values())
        image_anchors = anchors(ImageList(x, shapes), features)
        found = ssd.postprocess_detections({"bbox_regression": r32["loc"], "cls_logits": r32["conf"]},
                                           image_anchors, shapes)
    out = {"det_loc": r32["loc"].float().contiguous(), "det_conf": r32["conf"].float().contiguous()}
    for b, d in enumerate(found):
        out["det.%d" % b] = torch.cat([d["boxes"], d["scores"][:, None], d["labels"][:, None].float()], 1).contiguous()
    return out


def write_reference(out, r64, r32, initial, priors, extra=None):
    """Writes `expected.pth` (every 7th prior of the float64 outputs, the default boxes, the
    losses and PyTorch float32's distance from them: outputs in absolute terms, each state entry
    after the step as ||w32 - w64|| / ||w64 - w0|| (relative to its update), and the largest
    absolute difference of any state entry after the step) and `updated.pth` (the float64 state
    after the step, stored as float32). Returns the expected values and the worst relative error
    with its entry."""
    f32 = lambda t: t.detach().float().contiguous()  # noqa: E731
    expected = {
        "loc_sub": f32(r64["loc"][:, ::7, :]),
        "conf_sub": f32(r64["conf"][:, ::7, :]),
        "priors": f32(priors),
        "train_loc_sub": f32(r64["train_loc"][:, ::7, :]),
        "train_conf_sub": f32(r64["train_conf"][:, ::7, :]),
        "loss_loc": f32(r64["loss_loc"].reshape(1)),
        "loss_conf": f32(r64["loss_conf"].reshape(1)),
    }
    for key in ("loc", "conf", "train_loc", "train_conf"):
        expected["f32_error." + key] = f32((r32[key] - r64[key]).abs().max().reshape(1))
    worst, step_abs = (0.0, ""), 0.0
    for name, w0 in initial.items():
        w64, w32 = r64["state"][name].double(), r32["state"][name].double()
        update = (w64 - w0).norm().item()
        error = (w32 - w64).norm().item() / update if update > 0 else 0.0
        expected["f32_error.step." + name] = torch.tensor([error], dtype=torch.float32)
        worst = max(worst, (error, name))
        step_abs = max(step_abs, (w32 - w64).abs().max().item())
    expected["f32_error.step_abs"] = torch.tensor([step_abs], dtype=torch.float32)
    expected.update(extra or {})
    torch.save(expected, os.path.join(out, "expected.pth"))
    torch.save({k: (v.float() if v.is_floating_point() else v) for k, v in r64["state"].items()},
               os.path.join(out, "updated.pth"))
    return expected, worst


def run(model, anchors, x, labels, loc_t, dtype):
    """Evaluation outputs and default boxes, then training-mode outputs, loss and one SGD step,
    on a copy of `model` in `dtype`."""
    model = copy.deepcopy(model).to(dtype)
    x = x.to(dtype)
    model.eval()
    with torch.no_grad():
        loc, conf = model(x)
        sizes = [tuple(f.shape[-2:]) for f in model.backbone(x).values()]
        priors = anchors._grid_default_boxes([list(s) for s in sizes], [SIZE, SIZE], dtype=dtype)
    model.train()
    train_loc, train_conf = model(x)
    loss_l, loss_c = multibox_loss(train_loc, train_conf, labels, loc_t.to(dtype), neg_pos_ratio=NEG_POS_RATIO)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=4e-5)
    optimizer.zero_grad()
    (loss_l + loss_c).backward()
    optimizer.step()
    return {
        "loc": loc, "conf": conf, "priors": priors, "sizes": sizes,
        "train_loc": train_loc.detach(), "train_conf": train_conf.detach(),
        "loss_loc": loss_l.detach(), "loss_conf": loss_c.detach(),
        "state": model.state_dict(),
    }


if __name__ == "__main__":
    main()
