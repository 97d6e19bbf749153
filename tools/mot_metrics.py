#!/usr/bin/env python3
"""Scores tracker results against MOTChallenge ground truth with py-motmetrics (PyPI's
`motmetrics`, the reference implementation of CLEAR MOT and the identity metrics). Our own code.

    python tools/mot_metrics.py GT.txt RESULTS.txt [--min-mota X] [--min-idf1 Y] [--json OUT]
        [--switches]

GT.txt is `frame,id,x,y,w,h,scored,class,visibility` (as `ssd synthetic --video` writes it and
MOT16/17 ground truth is), RESULTS.txt `frame,id,x,y,w,h,score,class,-1,-1` (as `ssd track --mot`
writes it). Matching follows the MOTChallenge rules:

  - a result and a ground-truth object match when their IoU is at least 0.5 (motmetrics' distance
    1 - IoU at most 0.5) and, here, when their classes are the same (the 8th column; a result
    whose class is 0 or -1 matches any class);
  - ground truth with `scored` 0 (objects mostly hidden or outside the frame) is ignored: it is
    not a miss when nothing finds it, and a result that matches it (an optimal assignment over
    all the frame's ground truth first, as TrackEval's preprocessing does) is removed rather than
    counted as a false positive.

Prints MOTA, IDF1, MOTP (as 1 - mean IoU distance, i.e. mean IoU of matches), ID switches,
fragmentations, false positives, misses, mostly tracked / lost, precision and recall, and exits 1
when MOTA or IDF1 is under the given minimum.
"""

import argparse
import json
import sys

import numpy as np


def load(path, ground_truth):
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            if len(fields) < 7:
                sys.exit(f"{path}:{n}: {len(fields)} fields, expected at least 7")
            try:
                v = [float(x) for x in fields]
            except ValueError as e:
                sys.exit(f"{path}:{n}: {e}")
            frame, ident = int(v[0]), int(v[1])
            cls = int(v[7]) if len(v) > 7 else -1
            scored = v[6] > 0 if ground_truth else True
            rows.setdefault(frame, []).append((ident, v[2:6], cls, scored))
    return rows


def iou(a, b):
    """IoU of [x, y, w, h] boxes, every a against every b."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def same_class(gt_classes, hyp_classes):
    g = np.asarray(gt_classes).reshape(-1, 1)
    h = np.asarray(hyp_classes).reshape(1, -1)
    return (g == h) | (h <= 0)


def print_switches(events):
    """One line per SWITCH event of motmetrics' event table, with the object's previous match."""
    last = {}  # object id -> (frame, result id) of its latest match
    for (frame, _), row in events.iterrows():
        if row.Type not in ("MATCH", "SWITCH"):
            continue
        obj, hyp = int(row.OId), int(row.HId)
        if row.Type == "SWITCH":
            before = last.get(obj)
            if before is None:
                print(f"switch at frame {frame}: object {obj} -> id {hyp}")
            else:
                gap = frame - before[0] - 1
                print(
                    f"switch at frame {frame}: object {obj}, id {before[1]} -> {hyp}, "
                    f"after {gap} unmatched frame{'s' if gap != 1 else ''}"
                )
        last[obj] = (frame, hyp)


def main():
    import motmetrics as mm
    from scipy.optimize import linear_sum_assignment

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ground_truth")
    parser.add_argument("results")
    parser.add_argument("--min-mota", type=float)
    parser.add_argument("--min-idf1", type=float)
    parser.add_argument("--json", help="also write the metrics here")
    parser.add_argument(
        "--switches", action="store_true",
        help="list each ID switch: frame, object, the result id before and after, and how many "
             "frames the object went unmatched before it",
    )
    args = parser.parse_args()

    gt = load(args.ground_truth, True)
    hyp = load(args.results, False)
    acc = mm.MOTAccumulator(auto_id=False)
    removed = 0
    for frame in sorted(set(gt) | set(hyp)):
        g = gt.get(frame, [])
        h = hyp.get(frame, [])
        # Results on ignored ground truth go, found by an optimal assignment over all of it.
        if g and h:
            overlap = iou([r[1] for r in g], [r[1] for r in h])
            overlap = np.where(same_class([r[2] for r in g], [r[2] for r in h]), overlap, 0.0)
            rows, cols = linear_sum_assignment(-overlap)
            drop = {c for r, c in zip(rows, cols) if overlap[r, c] >= 0.5 and not g[r][3]}
            removed += len(drop)
            h = [x for i, x in enumerate(h) if i not in drop]
        g = [r for r in g if r[3]]
        distances = np.full((len(g), len(h)), np.nan)
        if g and h:
            overlap = iou([r[1] for r in g], [r[1] for r in h])
            ok = (overlap >= 0.5) & same_class([r[2] for r in g], [r[2] for r in h])
            distances = np.where(ok, 1.0 - overlap, np.nan)
        acc.update([r[0] for r in g], [r[0] for r in h], distances, frameid=frame)

    names = [
        "num_frames", "mota", "idf1", "motp", "num_switches", "num_fragmentations",
        "num_false_positives", "num_misses", "num_objects", "num_unique_objects",
        "mostly_tracked", "mostly_lost", "precision", "recall", "idp", "idr",
    ]
    summary = mm.metrics.create().compute(acc, metrics=names, name="sequence")
    m = {k: summary[k].iloc[0] for k in names}
    m = {k: (int(v) if float(v).is_integer() and k.startswith(("num", "mostly")) else float(v))
         for k, v in m.items()}
    m["ignored_results_removed"] = removed
    m["motp_iou"] = 1.0 - m.pop("motp")
    print(
        f"MOTA {m['mota']:.4f}  IDF1 {m['idf1']:.4f}  MOTP(IoU) {m['motp_iou']:.3f}  "
        f"ID switches {m['num_switches']}  fragmentations {m['num_fragmentations']}  "
        f"FP {m['num_false_positives']}  misses {m['num_misses']} of {m['num_objects']}  "
        f"tracks {m['num_unique_objects']} (mostly tracked {m['mostly_tracked']}, mostly lost "
        f"{m['mostly_lost']})  precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
        f"frames {m['num_frames']}  (results on ignored objects removed: {removed}; "
        f"motmetrics {mm.__version__})"
    )
    if args.switches:
        print_switches(acc.mot_events)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(m, f, indent=1)
    failed = []
    if args.min_mota is not None and not m["mota"] >= args.min_mota:
        failed.append(f"MOTA {m['mota']:.4f} < {args.min_mota}")
    if args.min_idf1 is not None and not m["idf1"] >= args.min_idf1:
        failed.append(f"IDF1 {m['idf1']:.4f} < {args.min_idf1}")
    if failed:
        print("FAILED: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
