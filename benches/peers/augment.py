#!/usr/bin/env python3
"""The peer of benches/data.rs: the SSD training transform in numpy + OpenCV, as the PyTorch
ports write it, timed per image on one core.

Per image: cv2.imread; photometric distortion (brightness, contrast before or after, saturation and
hue in HSV, each p 0.5, values saturated to [0, 255] like Caffe's uint8 images); expand (p 0.5,
ratio in [1, 4], mean fill); Caffe's min-IoU crop (samplers: whole image, 0.1, 0.3, 0.5, 0.7, 0.9,
none; scale [0.3, 1]; aspect [0.5, 2]; 50 trials; one candidate per sampler, one chosen at random;
boxes whose centre is in the crop are kept and clipped); flip p 0.5; cv2.resize to 300x300
(bilinear); RGB minus the mean, HWC -> CHW; then matching to the 8732 SSD300 priors (IoU 0.5, each
ground truth forced onto its best prior) and encoding with variances (0.1, 0.2).

Usage: augment.py <VOC root written by benches/data.rs> [--seconds S]
Prints one JSON line: {"per_image_ms": ..., "images": ..., "opencv": ..., "numpy": ...}.
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import xml.etree.ElementTree as ET  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

MEAN_RGB = np.array([123.0, 117.0, 104.0], dtype=np.float32)
SIZE = 300


def ssd300_priors():
    feature_maps = [38, 19, 10, 5, 3, 1]
    steps = [8, 16, 32, 64, 100, 300]
    min_sizes = [30, 60, 111, 162, 213, 264]
    max_sizes = [60, 111, 162, 213, 264, 315]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, f in enumerate(feature_maps):
        for i in range(f):
            for j in range(f):
                fk = SIZE / steps[k]
                cx, cy = (j + 0.5) / fk, (i + 0.5) / fk
                s = min_sizes[k] / SIZE
                out.append([cx, cy, s, s])
                s2 = np.sqrt(s * (max_sizes[k] / SIZE))
                out.append([cx, cy, s2, s2])
                for r in ratios[k]:
                    out.append([cx, cy, s * np.sqrt(r), s / np.sqrt(r)])
                    out.append([cx, cy, s / np.sqrt(r), s * np.sqrt(r)])
    return np.clip(np.array(out, dtype=np.float32), 0.0, 1.0)


PRIORS = ssd300_priors()
PRIOR_CORNERS = np.concatenate([PRIORS[:, :2] - PRIORS[:, 2:] / 2, PRIORS[:, :2] + PRIORS[:, 2:] / 2], 1)


def read_annotation(path):
    root = ET.parse(path).getroot()
    w = float(root.find("size/width").text)
    h = float(root.find("size/height").text)
    boxes, labels = [], []
    for obj in root.findall("object"):
        b = obj.find("bndbox")
        box = [float(b.find(k).text) - 1 for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append([box[0] / w, box[1] / h, box[2] / w, box[3] / h])
        labels.append(1)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def iou(a, b):
    """IoU of boxes a [N, 4] against b [M, 4]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def photometric(img, rng):
    img = img.astype(np.float32)
    if rng.random() < 0.5:
        img = np.clip(img + rng.uniform(-32, 32), 0, 255)
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    hue = rng.uniform(-18, 18) if rng.random() < 0.5 else None
    if contrast is not None and contrast_first:
        img = np.clip(img * contrast, 0, 255)
    if saturation is not None or hue is not None:
        hsv = cv2.cvtColor(img / 255.0, cv2.COLOR_RGB2HSV)  # float: H in degrees, S, V in [0, 1]
        if saturation is not None:
            hsv[:, :, 1] = np.clip(hsv[:, :, 1] * saturation, 0, 1)
        if hue is not None:
            hsv[:, :, 0] = np.mod(hsv[:, :, 0] + hue, 360)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    if contrast is not None and not contrast_first:
        img = np.clip(img * contrast, 0, 255)
    return img


def expand(img, boxes, rng):
    if rng.random() >= 0.5:
        return img, boxes
    h, w, _ = img.shape
    ratio = rng.uniform(1, 4)
    ew, eh = int(w * ratio), int(h * ratio)
    left, top = int(rng.uniform(0, ew - w)), int(rng.uniform(0, eh - h))
    canvas = np.empty((eh, ew, 3), dtype=img.dtype)
    canvas[:, :] = MEAN_RGB
    canvas[top:top + h, left:left + w] = img
    boxes = boxes * np.array([w, h, w, h], dtype=np.float32)
    boxes = (boxes + np.array([left, top, left, top], dtype=np.float32)) / np.array([ew, eh, ew, eh], dtype=np.float32)
    return canvas, boxes


SAMPLERS = [(None, 1.0, 1.0, 1)] + [(m, 0.3, 1.0, 50) for m in (0.1, 0.3, 0.5, 0.7, 0.9)] + [(None, 0.3, 1.0, 50)]


def crop(img, boxes, labels, rng):
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    candidates = []
    for min_iou, lo, hi, trials in SAMPLERS:
        for _ in range(trials):
            scale = rng.uniform(lo, hi)
            ar = rng.uniform(0.5, 2.0) if trials > 1 else 1.0
            ar = min(max(ar, scale * scale), 1 / (scale * scale))
            bw, bh = min(scale * np.sqrt(ar), 1.0), min(scale / np.sqrt(ar), 1.0)
            x, y = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
            rect = np.array([x, y, x + bw, y + bh], dtype=np.float32)
            inside = (centres[:, 0] >= rect[0]) & (centres[:, 0] <= rect[2]) & (centres[:, 1] >= rect[1]) & (centres[:, 1] <= rect[3])
            if len(boxes) and not inside.any():
                continue
            if min_iou is not None and (len(boxes) == 0 or iou(boxes, rect[None])[:, 0].max() < min_iou):
                continue
            candidates.append((rect, inside))
            break
    rect, inside = candidates[rng.integers(len(candidates))]
    h, w, _ = img.shape
    x0, y0, x1, y1 = int(rect[0] * w), int(rect[1] * h), max(int(rect[2] * w), int(rect[0] * w) + 1), max(int(rect[3] * h), int(rect[1] * h) + 1)
    img = img[y0:y1, x0:x1]
    kept = boxes[inside]
    cw, ch = rect[2] - rect[0], rect[3] - rect[1]
    kept = (kept - np.array([rect[0], rect[1], rect[0], rect[1]], dtype=np.float32)) / np.array([cw, ch, cw, ch], dtype=np.float32)
    kept = np.clip(kept, 0, 1)
    return img, kept, labels[inside]


def encode(boxes, labels):
    if len(boxes) == 0:
        return np.zeros(len(PRIORS), np.int64), np.zeros((len(PRIORS), 4), np.float32)
    overlaps = iou(boxes, PRIOR_CORNERS)
    best_prior = overlaps.argmax(1)
    best_gt = overlaps.argmax(0)
    best_gt_iou = overlaps.max(0)
    best_gt_iou[best_prior] = 2.0
    best_gt[best_prior] = np.arange(len(boxes))
    matched = boxes[best_gt]
    conf = labels[best_gt]
    conf[best_gt_iou < 0.5] = 0
    g_c = ((matched[:, :2] + matched[:, 2:]) / 2 - PRIORS[:, :2]) / (0.1 * PRIORS[:, 2:])
    g_wh = np.log((matched[:, 2:] - matched[:, :2]) / PRIORS[:, 2:]) / 0.2
    return conf, np.concatenate([g_c, g_wh], 1)


def transform(path, boxes, labels, rng):
    img = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    img = photometric(img, rng)
    img, boxes = expand(img, boxes, rng)
    img, boxes, labels = crop(img, boxes, labels, rng)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
    img = cv2.resize(np.ascontiguousarray(img), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    chw = (img - MEAN_RGB).transpose(2, 0, 1).copy()
    conf, loc = encode(boxes, labels)
    return chw, conf, loc


def main():
    root = sys.argv[1]
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 10.0
    ids = [line.split()[0] for line in open(os.path.join(root, "ImageSets/Main/trainval.txt")) if line.strip()]
    samples = [(os.path.join(root, "JPEGImages", i + ".jpg"), *read_annotation(os.path.join(root, "Annotations", i + ".xml"))) for i in ids]
    rng = np.random.default_rng(1)
    for path, boxes, labels in samples:  # warm-up
        transform(path, boxes, labels.copy(), rng)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        path, boxes, labels = samples[count % len(samples)]
        transform(path, boxes, labels.copy(), rng)
        count += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"per_image_ms": 1000 * elapsed / count, "images": count, "opencv": cv2.__version__, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
