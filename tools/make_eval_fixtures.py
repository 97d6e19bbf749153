#!/usr/bin/env python3
"""Writes crates/ssd-eval/tests/fixtures/voc_eval_reference.json: a generated evaluation set
(ground truth with difficult flags, detections with tied scores, duplicates, misses and boxes near
IoU 0.5 on integer pixels) and the APs that benches/peers/voc_eval.py (our Python reference,
written from the devkit definition) computes for it, for both metrics and both IoU rules.

Usage: python3 tools/make_eval_fixtures.py   (needs numpy)
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benches", "peers"))
from voc_eval import class_ground_truth, eval_class  # noqa: E402

CLASSES = ["circle", "square", "triangle", "ring", "onlydifficult"]


def main():
    rng = np.random.default_rng(20161208)
    images = {}
    detections = []  # (image, class, score, box) in the order a detector would write them
    for i in range(250):
        image_id = "%06d" % (i + 1)
        objects = []
        for _ in range(rng.integers(0, 5)):
            name = CLASSES[rng.integers(0, 4)]
            x0, y0 = rng.integers(1, 300, size=2)
            w, h = rng.integers(5, 120, size=2)
            objects.append((name, [float(x0), float(y0), float(x0 + w), float(y0 + h)], bool(rng.random() < 0.15)))
        if rng.random() < 0.05:
            x0, y0 = rng.integers(1, 300, size=2)
            objects.append(("onlydifficult", [float(x0), float(y0), float(x0 + 20), float(y0 + 30)], True))
        images[image_id] = objects
        dets = []
        for name, box, _ in objects:
            if rng.random() < 0.85:
                jitter = rng.integers(-12, 13, size=4) if rng.random() < 0.5 else rng.normal(0, 4, size=4)
                b = [box[k] + float(jitter[k]) for k in range(4)]
                b[2], b[3] = max(b[2], b[0] + 1), max(b[3], b[1] + 1)
                dets.append((name, b))
                if rng.random() < 0.2:  # a duplicate
                    dets.append((name, [v + 1.0 for v in b]))
            if rng.random() < 0.1:  # exactly IoU 1/2 under the +1 rule: double the height
                h = box[3] - box[1] + 1
                dets.append((name, [box[0], box[1], box[2], box[1] + 2 * h - 1]))
        for _ in range(rng.integers(0, 4)):  # false positives anywhere
            x0, y0 = rng.integers(1, 350, size=2)
            dets.append((CLASSES[rng.integers(0, 5)], [float(x0), float(y0), float(x0 + rng.integers(5, 90)), float(y0 + rng.integers(5, 90))]))
        for name, b in dets:
            score = round(float(rng.random()), 2)  # two decimals: many ties
            detections.append((image_id, name, score, b))

    expected = {}
    for metric in ("voc07", "area"):
        for rule in ("ge", "gt"):
            aps = {}
            for c in CLASSES:
                gt = class_ground_truth(images, c)
                mine = [(d[0], d[2], d[3]) for d in detections if d[1] == c]
                ap, rec, prec = eval_class(gt, mine, metric=metric, rule=rule)
                aps[c] = {"ap": ap, "recall": rec.tolist(), "precision": prec.tolist()}
            valid = [v["ap"] for v in aps.values() if v["ap"] is not None]
            expected["%s_%s" % (metric, rule)] = {"classes": aps, "map": float(np.mean(valid))}

    out = {
        "generator": "tools/make_eval_fixtures.py (numpy %s)" % np.__version__,
        "classes": CLASSES,
        "images": [{"id": k, "objects": [{"name": o[0], "bbox": o[1], "difficult": o[2]} for o in v]} for k, v in images.items()],
        "detections": [{"image": d[0], "name": d[1], "score": d[2], "bbox": d[3]} for d in detections],
        "expected": expected,
    }
    path = os.path.join(HERE, "..", "crates", "ssd-eval", "tests", "fixtures", "voc_eval_reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote %s: %d images, %d detections" % (path, len(images), len(detections)))
    for key, value in expected.items():
        print(key, "mAP", value["map"])


if __name__ == "__main__":
    main()
