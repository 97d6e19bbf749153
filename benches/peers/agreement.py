#!/usr/bin/env python3
"""How far two `ssd detect --jsonl` runs of one model agree (e.g. bf16 against fp32): the share
of the reference's detections that the other run has too (same class, IoU >= 0.5, greedy by
score), the reverse, and the largest score difference of the matched pairs.

Usage: agreement.py REFERENCE.jsonl OTHER.jsonl
"""

import json
import sys


def load(path):
    with open(path) as f:
        return {l["image"]: l["detections"] for l in map(json.loads, f)}


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


def matched(ref, other):
    used, pairs = set(), []
    for d in ref:
        best, best_iou = None, 0.5
        for j, e in enumerate(other):
            if j in used or e["label"] != d["label"]:
                continue
            v = iou(d["bbox"], e["bbox"])
            if v >= best_iou:
                best, best_iou = j, v
        if best is not None:
            used.add(best)
            pairs.append((d, other[best]))
    return pairs


def main():
    ref, other = load(sys.argv[1]), load(sys.argv[2])
    n_ref = sum(len(v) for v in ref.values())
    n_other = sum(len(other.get(k, [])) for k in ref)
    pairs = [p for k in ref for p in matched(ref[k], other.get(k, []))]
    score = max((abs(a["score"] - b["score"]) for a, b in pairs), default=0.0)
    print(json.dumps({
        "images": len(ref), "reference": n_ref, "other": n_other, "matched": len(pairs),
        "recall": len(pairs) / max(n_ref, 1), "precision": len(pairs) / max(n_other, 1),
        "max_score_diff": score,
    }))


if __name__ == "__main__":
    main()
