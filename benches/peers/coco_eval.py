#!/usr/bin/env python3
"""The COCO metric on a val2017-sized workload: generated files, then each tool timed on them.

  coco_eval.py generate DIR      writes DIR/gt.json (5,000 images, ~36.8k boxes, 80 categories
                                 with COCO's ids) and DIR/results.json (100 detections per image)
  coco_eval.py time DIR SSD      times `SSD eval` (whole process; its own "evaluated in" line for
                                 the evaluation alone) and pycocotools, faster-coco-eval and
                                 hotcoco, one after another, and checks that they agree on AP

Each Python tool is timed from reading the files to summarize(), in this process; the best of
two runs is kept.
"""

import json
import os
import random
import re
import subprocess
import sys
import time

IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def generate(out):
    rng = random.Random(2017)
    images, annotations, results = [], [], []
    for i in range(5000):
        w, h = rng.randint(320, 640), rng.randint(240, 640)
        images.append({"id": 1000 + i, "file_name": f"{1000 + i:012d}.jpg", "width": w, "height": h})
    boxes = {}
    for a in range(36781):
        im = images[rng.randrange(5000)]
        bw = rng.uniform(2, im["width"] / 2) * rng.random()
        bh = rng.uniform(2, im["height"] / 2) * rng.random()
        bw, bh = max(bw, 1.0), max(bh, 1.0)
        x, y = rng.uniform(0, im["width"] - bw), rng.uniform(0, im["height"] - bh)
        cat = rng.choice(IDS)
        box = [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]
        annotations.append({"id": a + 1, "image_id": im["id"], "category_id": cat, "bbox": box,
                            "area": round(bw * bh * 0.7, 3), "iscrowd": int(rng.random() < 0.01)})
        boxes.setdefault(im["id"], []).append((cat, box))
    for im in images:
        own = boxes.get(im["id"], [])
        for d in range(100):
            if d < len(own) * 2 and own:
                cat, (x, y, bw, bh) = own[d % len(own)]
                box = [x + rng.gauss(0, bw * 0.1), y + rng.gauss(0, bh * 0.1),
                       bw * rng.uniform(0.8, 1.2), bh * rng.uniform(0.8, 1.2)]
            else:
                cat = rng.choice(IDS)
                bw, bh = rng.uniform(4, 200), rng.uniform(4, 200)
                box = [rng.uniform(0, im["width"] - 4), rng.uniform(0, im["height"] - 4), bw, bh]
            results.append({"image_id": im["id"], "category_id": cat,
                            "bbox": [round(v, 2) for v in box], "score": round(rng.random(), 4)})
    categories = [{"id": i, "name": f"category {i}"} for i in IDS]
    with open(os.path.join(out, "gt.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f)
    print(f"{len(images)} images, {len(annotations)} boxes, {len(results)} detections in {out}",
          file=sys.stderr)


def best_of(n, fn):
    best, value = None, None
    for _ in range(n):
        start = time.perf_counter()
        value = fn()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best, value


def quiet(fn):
    def run():
        devnull = open(os.devnull, "w")
        saved = sys.stdout
        sys.stdout = devnull
        try:
            return fn()
        finally:
            sys.stdout = saved
            devnull.close()
    return run


def pycocotools_eval(gt, res):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    g = COCO(gt)
    ev = COCOeval(g, g.loadRes(res), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev.stats[0]


def faster_eval(gt, res):
    from faster_coco_eval import COCO, COCOeval_faster
    g = COCO(gt)
    ev = COCOeval_faster(g, g.loadRes(res), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev.stats[0]


def hotcoco_eval(gt, res):
    from hotcoco import COCO, COCOeval
    g = COCO(gt)
    ev = COCOeval(g, g.load_res(res), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev.stats[0]


def ssd_eval(ssd, gt, res):
    out = subprocess.run([ssd, "eval", "--dataroot", gt, "--detections", res],
                         check=True, capture_output=True, text=True).stdout
    ap = float(re.search(r"IoU=0\.50:0\.95 \| area=   all \| maxDets=100 \] = ([0-9.]+)", out).group(1))
    alone = re.search(r"evaluated in ([0-9.]+)(ms|s)", out)
    seconds = float(alone.group(1)) / (1000 if alone.group(2) == "ms" else 1)
    return ap, seconds


def main():
    if sys.argv[1] == "generate":
        generate(sys.argv[2])
        return
    work, ssd = sys.argv[2], sys.argv[3]
    gt, res = os.path.join(work, "gt.json"), os.path.join(work, "results.json")
    rows = []
    took, (ap, alone) = best_of(2, lambda: ssd_eval(ssd, gt, res))
    rows.append(("ssd eval --detections (whole process)", took, ap))
    rows.append(("  of which the evaluation alone", alone, ap))
    for name, fn in [("hotcoco (Python)", hotcoco_eval), ("faster-coco-eval", faster_eval),
                     ("pycocotools", pycocotools_eval)]:
        took, ap = best_of(2, quiet(lambda fn=fn: fn(gt, res)))
        rows.append((name, took, ap))
    py = rows[-1][1]
    print(f"{'tool':<40} {'seconds':>8} {'vs pycocotools':>15} {'AP':>7}")
    for name, took, ap in rows:
        print(f"{name:<40} {took:8.2f} {py / took:14.1f}x {ap:7.3f}")  # ssd prints 3 decimals


if __name__ == "__main__":
    main()
