#!/usr/bin/env python3
"""Scores one COCO results file with pycocotools and with `ssd eval`, and checks that the 12
numbers agree within 1e-12: for results files `ssd` wrote (e.g. `ssd quickstart --format coco`'s
results/quickstart/det/detections_test.json against data/annotations/instances_test.json).

Run: $SSD_CACHE/coco-venv/bin/python tools/coco_cross_check.py GT.json RESULTS.json PATH/TO/ssd
"""

import contextlib
import io
import json
import subprocess
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def main():
    gt_path, results_path, ssd = sys.argv[1:4]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(results_path), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = json.loads(subprocess.run([ssd, "eval", "--dataroot", gt_path, "--detections", results_path,
                                      "--json"], check=True, capture_output=True, text=True).stdout)
    worst = 0.0
    for key, theirs in zip(KEYS, ev.stats):
        mine = ours["coco"][key]
        mine = -1.0 if mine is None else mine
        worst = max(worst, abs(mine - theirs))
        print(f"{key:<6} pycocotools {theirs:.15f}  ssd {mine:.15f}")
    print(f"largest difference {worst:.3g}")
    sys.exit(0 if worst <= 1e-12 else 1)


if __name__ == "__main__":
    main()
