#!/usr/bin/env python3
"""Writes the COCO metric parity fixture: ground truth, results and pycocotools' numbers.

tests/fixtures/coco/gt.json       a COCO annotation file
tests/fixtures/coco/results.json  a COCO results file for it
tests/fixtures/coco/expected.json pycocotools' 12 summary numbers and per-category AP

The data is seeded and built to reach every rule of COCOeval: crowd regions, `area` unlike
w * h, non-contiguous category ids listed out of order, a category without ground truth and one
without detections, an image-category pair with more than 100 detections, score ties, areas
exactly at the small/medium/large bounds (32^2, 96^2), IoU exactly 0.5, images without ground
truth and images without detections, and degenerate ground truth (zero or negative width or
height, boxes outside their image), which pycocotools scores as given.

Per-category AP is pycocotools' precision array averaged as detectron2 does:
mean(precision[:, :, k, area=all, maxDets=100]) over the entries > -1.

Run: bash scripts/install-coco-tools.sh && $SSD_CACHE/coco-venv/bin/python tools/make_coco_fixtures.py
"""

import json
import os
import random
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "coco")


def make(seed=2016):
    rng = random.Random(seed)
    # Out of id order, with gaps; 90 has no ground truth, 41 gets no detections.
    categories = [{"id": i, "name": f"class {i}"} for i in (40, 3, 90, 7, 12, 41)]
    with_gt = [3, 7, 12, 40, 41]
    images, annotations, results = [], [], []
    ann_id = 1
    for n in range(40):
        image_id = 1000 + 7 * n
        width, height = rng.randint(160, 640), rng.randint(160, 640)
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": width, "height": height})
        if n % 13 == 5:
            continue  # an image without ground truth (it still gets false positives below)
        for _ in range(rng.randint(1, 8)):
            cat = rng.choice(with_gt)
            w = round(rng.uniform(4, width / 2), 1)
            h = round(rng.uniform(4, height / 2), 1)
            x = round(rng.uniform(0, width - w), 1)
            y = round(rng.uniform(0, height - h), 1)
            # A mask's area: smaller than its box, sometimes exactly at a range bound.
            area = round(w * h * rng.uniform(0.55, 0.95), 2)
            bound = rng.random()
            if bound < 0.08:
                area = 32.0**2
            elif bound < 0.16:
                area = 96.0**2
            crowd = 1 if rng.random() < 0.07 else 0
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": cat,
                                "bbox": [x, y, w, h], "area": area, "iscrowd": crowd})
            ann_id += 1
            if cat == 41 or n % 11 == 3:
                continue  # category 41 and some images get no detections
            for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
                jx, jy = rng.gauss(0, w * 0.12), rng.gauss(0, h * 0.12)
                jw, jh = w * rng.uniform(0.75, 1.3), h * rng.uniform(0.75, 1.3)
                results.append({"image_id": image_id, "category_id": cat,
                                "bbox": [round(x + jx, 2), round(y + jy, 2), round(jw, 2), round(jh, 2)],
                                # Two decimals: many ties.
                                "score": round(rng.uniform(0.05, 1.0), 2)})
        for _ in range(rng.randint(0, 4)):  # false positives, some of category 90
            cat = rng.choice([3, 7, 12, 40, 90])
            w, h = rng.uniform(5, width / 3), rng.uniform(5, height / 3)
            results.append({"image_id": image_id, "category_id": cat,
                            "bbox": [round(rng.uniform(0, width - w), 2), round(rng.uniform(0, height - h), 2),
                                     round(w, 2), round(h, 2)],
                            "score": round(rng.uniform(0.01, 0.6), 2)})
    # IoU exactly 0.5: a 20x20 box and detections covering its top or left half.
    image_id = 5000
    images.append({"id": image_id, "file_name": "5000.jpg", "width": 100, "height": 100})
    annotations.append({"id": ann_id, "image_id": image_id, "category_id": 7,
                        "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0})
    ann_id += 1
    results.append({"image_id": image_id, "category_id": 7, "bbox": [10, 10, 20, 10], "score": 0.9})
    results.append({"image_id": image_id, "category_id": 7, "bbox": [10, 10, 10, 20], "score": 0.9})
    # More than 100 detections for one image and category (maxDets cuts them), many tied.
    image_id = 5007
    images.append({"id": image_id, "file_name": "5007.jpg", "width": 640, "height": 480})
    for k in range(6):
        annotations.append({"id": ann_id, "image_id": image_id, "category_id": 12,
                            "bbox": [20 + 100 * k, 40, 60, 80], "area": 4000, "iscrowd": 0})
        ann_id += 1
    for d in range(150):
        k = d % 6
        results.append({"image_id": image_id, "category_id": 12,
                        "bbox": [20 + 100 * k + (d % 7), 40 + (d % 5), 60 - (d % 3), 80],
                        "score": round(1.0 - 0.005 * (d // 3), 3)})
    # A crowd region with detections inside it (matched any number of times).
    annotations.append({"id": ann_id, "image_id": image_id, "category_id": 3,
                        "bbox": [0, 200, 400, 200], "area": 60000, "iscrowd": 1})
    ann_id += 1
    for d in range(5):
        results.append({"image_id": image_id, "category_id": 3,
                        "bbox": [10 + 70 * d, 220, 50, 60], "score": 0.5 + 0.05 * d})
    # Degenerate ground truth, which pycocotools scores exactly as given (nothing is dropped or
    # clipped): zero width, zero height, negative width, a box entirely outside its image and one
    # partly outside, each with a detection on it.
    image_id = 5014
    images.append({"id": image_id, "file_name": "5014.jpg", "width": 200, "height": 100})
    for bbox, area, detection in [
        ([20, 20, 0, 30], 0.0, [19, 20, 2, 30]),
        ([60, 20, 30, 0], 0.0, [60, 19, 30, 2]),
        ([110, 20, -10, 30], 300.0, [100, 20, 10, 30]),
        ([250, 10, 40, 40], 1600.0, [252, 10, 40, 40]),
        ([170, 60, 50, 60], 3000.0, [170, 60, 50, 60]),
    ]:
        annotations.append({"id": ann_id, "image_id": image_id, "category_id": 7,
                            "bbox": bbox, "area": area, "iscrowd": 0})
        ann_id += 1
        results.append({"image_id": image_id, "category_id": 7, "bbox": detection, "score": 0.8})
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, results


def evaluate(gt_path, results_path):
    gt = COCO(gt_path)
    dt = gt.loadRes(results_path)
    ev = COCOeval(gt, dt, iouType="bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_category = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_category[str(cat_id)] = float(np.mean(p)) if p.size else None
    return [float(s) for s in ev.stats], per_category


def main():
    os.makedirs(OUT, exist_ok=True)
    gt, results = make()
    gt_path = os.path.join(OUT, "gt.json")
    results_path = os.path.join(OUT, "results.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    with open(results_path, "w") as f:
        json.dump(results, f)
    stats, per_category = evaluate(gt_path, results_path)
    from importlib.metadata import version
    expected = {"pycocotools": version("pycocotools"), "stats": stats, "per_category_ap": per_category}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} objects, {len(results)} detections",
          file=sys.stderr)


if __name__ == "__main__":
    main()
