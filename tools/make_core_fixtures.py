#!/usr/bin/env python3
"""Writes crates/ssd-core/tests/fixtures/torchvision_ops.json: reference results of torchvision's
`ops.box_iou`, `ops.nms` and `ops.batched_nms` for ssd-core's parity tests.

Run from the repository root with PyPI's torch/torchvision (see README, "Regenerating fixtures"):
    python tools/make_core_fixtures.py
The output is deterministic for a given torch/torchvision version (seeded generator).
"""
import json
import os
import sys

import torch
import torchvision
from torchvision.ops import batched_nms, box_iou, nms

OUT = os.path.join("crates", "ssd-core", "tests", "fixtures", "torchvision_ops.json")
GEN = torch.Generator().manual_seed(20161225)


def rand_boxes(n, scale=1.0, min_size=0.0):
    """n proper corner boxes in [0, scale] (float32)."""
    xy = torch.rand(n, 2, generator=GEN) * scale * 0.8
    wh = torch.rand(n, 2, generator=GEN) * scale * 0.5 + min_size
    return torch.cat([xy, xy + wh], dim=1).to(torch.float32)


def clustered_boxes(n, clusters=4):
    """Boxes jittered around a few centres, so NMS has real work to do."""
    centres = rand_boxes(clusters)
    pick = torch.randint(0, clusters, (n,), generator=GEN)
    jitter = (torch.rand(n, 4, generator=GEN) - 0.5) * 0.1
    b = centres[pick] + jitter
    x0 = torch.minimum(b[:, 0], b[:, 2] - 0.01)
    y0 = torch.minimum(b[:, 1], b[:, 3] - 0.01)
    return torch.stack([x0, y0, b[:, 2], b[:, 3]], dim=1).to(torch.float32)


def tolist(t):
    return [[float(v) for v in row] for row in t.tolist()] if t.dim() == 2 else [float(v) for v in t.tolist()]


def iou_case(name, a, b):
    return {"name": name, "a": tolist(a), "b": tolist(b), "iou": tolist(box_iou(a, b))}


def nms_case(name, boxes, scores, thr):
    keep = nms(boxes, scores, thr)
    return {"name": name, "boxes": tolist(boxes), "scores": tolist(scores), "threshold": thr,
            "keep": [int(i) for i in keep.tolist()]}


def batched_case(name, boxes, scores, idxs, thr):
    keep = batched_nms(boxes, scores, idxs, thr)
    return {"name": name, "boxes": tolist(boxes), "scores": tolist(scores),
            "class_ids": [int(i) for i in idxs.tolist()], "threshold": thr,
            "keep": [int(i) for i in keep.tolist()]}


def main():
    # Thresholds are exactly representable in f32 so torchvision's double comparison and ours agree.
    half = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 1.0], [1.0, 0.0, 2.0, 2.0],
                         [0.0, 0.0, 1.0, 2.0]], dtype=torch.float32)
    ident = torch.tensor([[0.1, 0.1, 0.4, 0.5]] * 4, dtype=torch.float32)
    empty = torch.zeros((0, 4), dtype=torch.float32)

    iou = [
        iou_case("random", rand_boxes(17), rand_boxes(23)),
        iou_case("pixels", rand_boxes(9, 500.0, 1.0), rand_boxes(11, 500.0, 1.0)),
        iou_case("identical", ident, ident),
        iou_case("exactly_half", half, half),
        iou_case("empty_rows", empty, rand_boxes(3)),
        iou_case("empty_cols", rand_boxes(3), empty),
    ]

    tied = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.5, 0.7, 0.5], dtype=torch.float32)
    tied_boxes = clustered_boxes(7, clusters=2)
    nms_cases = [
        nms_case("random_0.5", rand_boxes(60), torch.rand(60, generator=GEN), 0.5),
        nms_case("clustered_0.5", clustered_boxes(200), torch.rand(200, generator=GEN), 0.5),
        nms_case("clustered_0.25", clustered_boxes(200), torch.rand(200, generator=GEN), 0.25),
        nms_case("clustered_0.75", clustered_boxes(200), torch.rand(200, generator=GEN), 0.75),
        nms_case("tied_scores", tied_boxes, tied, 0.5),
        nms_case("identical_boxes", ident, torch.tensor([0.2, 0.8, 0.8, 0.1]), 0.5),
        nms_case("exactly_half_kept", half[:2], torch.tensor([0.9, 0.8]), 0.5),
        nms_case("exactly_half_suppressed_below", half[:2], torch.tensor([0.9, 0.8]), 0.4999999701976776),
        nms_case("empty", empty, torch.zeros(0), 0.5),
        nms_case("pixels_0.5", rand_boxes(80, 300.0, 1.0), torch.rand(80, generator=GEN), 0.5),
    ]

    batched = [
        batched_case("clustered_5_classes", clustered_boxes(300), torch.rand(300, generator=GEN),
                     torch.randint(0, 5, (300,), generator=GEN), 0.5),
        batched_case("clustered_20_classes_0.25", clustered_boxes(400), torch.rand(400, generator=GEN),
                     torch.randint(1, 21, (400,), generator=GEN), 0.25),
        batched_case("identical_boxes_two_classes", ident, torch.tensor([0.2, 0.8, 0.8, 0.1]),
                     torch.tensor([0, 1, 0, 1]), 0.5),
        batched_case("tied_scores", tied_boxes, tied, torch.tensor([0, 0, 1, 1, 0, 1, 0]), 0.5),
        batched_case("empty", empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5),
    ]

    # torchvision's default boxes for ssd300_vgg16 (its COCO recipe), in (cx, cy, w, h).
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    generator = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                    scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                                    steps=[8, 16, 32, 64, 100, 300])
    grids = [[f, f] for f in (38, 19, 10, 5, 3, 1)]
    tv_priors = generator._grid_default_boxes(grids, [300, 300])

    doc = {
        "generator": "tools/make_core_fixtures.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "iou": iou,
        "nms": nms_cases,
        "batched_nms": batched,
        "torchvision_ssd300_priors": tolist(tv_priors),
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
