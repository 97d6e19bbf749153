#!/usr/bin/env python3
"""VOC detection AP in Python, written from the devkit's definition (VOCevaldet.m, and the
py-faster-rcnn `voc_eval` procedure that the PyTorch SSD ports use): the reference for
crates/ssd-eval's parity test (via tools/make_eval_fixtures.py) and the peer of benches/eval.rs.

Per class: detections sorted by score, descending, stable on ties; each compared with the ground
truth of highest IoU (+1 pixel convention) in its image; IoU >= 0.5 (devkit; `gt` rule: > 0.5 as in
py-faster-rcnn): difficult -> ignored, not yet detected -> true positive, already detected ->
false positive; otherwise false positive. Recall over non-difficult objects. AP: VOC07 11-point
(thresholds numpy.arange(0., 1.1, 0.1)) or the VOC2010+ area.

Usage (timing): voc_eval.py <VOC root> <results folder> [--set test] [--classes FILE]
Prints one JSON line with the APs, the mAP and the seconds spent reading the results files and
evaluating (ground truth is parsed before the clock starts, as py-faster-rcnn caches it).
"""

import glob
import json
import os
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np


def voc_ap(rec, prec, metric="voc07"):
    if metric == "voc07":
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def eval_class(class_gt, detections, metric="voc07", rule="ge", threshold=0.5):
    """class_gt: {image_id: (boxes [n, 4] float, difficult [n] bool)} for every image of the set;
    detections: list of (image_id, score, [x0, y0, x1, y1]) in file order.
    Returns (ap or None, recall array, precision array)."""
    npos = sum(int(np.sum(~d)) for _, d in class_gt.values())
    detected = {k: np.zeros(len(d), dtype=bool) for k, (_, d) in class_gt.items()}
    ids = [d[0] for d in detections]
    scores = np.array([d[1] for d in detections], dtype=np.float64)
    boxes = np.array([d[2] for d in detections], dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-scores, kind="stable")
    nd = len(order)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        image = ids[order[d]]
        bb = boxes[order[d]]
        gt_boxes, difficult = class_gt[image]
        ovmax = -np.inf
        if gt_boxes.size > 0:
            ixmin = np.maximum(gt_boxes[:, 0], bb[0])
            iymin = np.maximum(gt_boxes[:, 1], bb[1])
            ixmax = np.minimum(gt_boxes[:, 2], bb[2])
            iymax = np.minimum(gt_boxes[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (gt_boxes[:, 2] - gt_boxes[:, 0] + 1.0) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1.0) - inters
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        passes = ovmax >= threshold if rule == "ge" else ovmax > threshold
        if passes:
            if not difficult[jmax]:
                if not detected[image][jmax]:
                    tp[d] = 1.0
                    detected[image][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    if npos == 0:
        return None, np.zeros(0), np.zeros(0)
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return float(voc_ap(rec, prec, metric)), rec, prec


def class_ground_truth(images, class_name):
    """images: {image_id: [(name, [x0, y0, x1, y1], difficult), ...]}."""
    out = {}
    for image_id, objects in images.items():
        mine = [o for o in objects if o[0] == class_name]
        out[image_id] = (
            np.array([o[1] for o in mine], dtype=np.float64).reshape(-1, 4),
            np.array([bool(o[2]) for o in mine], dtype=bool),
        )
    return out


def parse_annotation(path):
    root = ET.parse(path).getroot()
    objects = []
    for obj in root.findall("object"):
        b = obj.find("bndbox")
        difficult = obj.find("difficult")
        objects.append((
            obj.find("name").text.strip(),
            [float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")],
            difficult is not None and int(difficult.text) == 1,
        ))
    return objects


def read_results_file(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                out.append((parts[0], float(parts[1]), [float(v) for v in parts[2:6]]))
    return out


VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]


def main():
    root, results = sys.argv[1], sys.argv[2]
    image_set = sys.argv[sys.argv.index("--set") + 1] if "--set" in sys.argv else "test"
    if "--classes" in sys.argv:
        classes = [line.strip() for line in open(sys.argv[sys.argv.index("--classes") + 1]) if line.strip()]
    else:
        classes = VOC_CLASSES
    ids = [line.split()[0] for line in open(os.path.join(root, "ImageSets", "Main", image_set + ".txt")) if line.strip()]
    images = {i: parse_annotation(os.path.join(root, "Annotations", i + ".xml")) for i in ids}
    per_class_gt = {c: class_ground_truth(images, c) for c in classes}
    start = time.perf_counter()
    aps = {}
    for c in classes:
        files = glob.glob(os.path.join(results, "*_det_%s_%s.txt" % (image_set, c)))
        detections = read_results_file(files[0]) if files else []
        ap, _, _ = eval_class(per_class_gt[c], detections)
        aps[c] = ap
    seconds = time.perf_counter() - start
    valid = [a for a in aps.values() if a is not None]
    print(json.dumps({"seconds": seconds, "map": float(np.mean(valid)) if valid else None, "ap": aps}))


if __name__ == "__main__":
    main()
