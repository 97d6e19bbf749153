#!/usr/bin/env python3
"""Scores one network's whole-run parity between `ssd train` and tools/train_reference.py
(scripts/train-parity.sh runs both and calls this). Our own code.

The work folder holds, for one network trained on one dumped run per precision:

  ours32/loss/NAME.csv, dump32/   `ssd train` in float32 (`--dump-batches dump32`)
  ours64/loss/NAME.csv, dump64/   `ssd train --precision fp64`
  ref32/, ref64/                  the reference on dump32 in float32 and float64
  ref64burn/, ref64exact/         the reference on dump64 in float64, with Burn's float32 momentum
                                  and weight decay (`--burn-constants`) and with the exact ones

and prints one line: the largest relative difference of the loss over the iterations and of the
final weights, in float64 and in float32, and the mAPs. It exits 1 when a tolerance is exceeded:

  - float64, Burn's constants: every iteration's loss and every final weight tensor within
    TOL_F64 (relative). Both trainers then compute the same recipe in float64, so what is left is
    the order of float64 sums: a difference of recipe (schedule, warm-up, bias group, momentum,
    clipping, mining, batch norm) is orders of magnitude larger from the iteration it acts on.
  - float32: the two runs drift apart, as any two float32 runs of one recipe do (hard-negative
    mining turns rounding into a different selection, and SGD amplifies it); PyTorch's own float32
    run drifts from its float64 run as much. The yardstick is that drift, measured on the same
    batches: our float32 run's distance from PyTorch's float64 run must stay within
    F32_FACTOR x PyTorch float32's distance from it (plus F32_SLACK), for the median per-iteration
    loss difference, the mean loss of the last fifth of the run and the final weights; and the
    final mAP within max(MAP_TOL, F32_FACTOR x |PyTorch float32 - PyTorch float64|) of the nearer
    of PyTorch's two (early in a run the mAP still climbs steeply, and float rounding alone moves
    it by about a hundredth: 0.129 and 0.115 for PyTorch's two runs of the small preset at 300
    iterations).

  python3 tools/train_parity.py WORK NAME ITERATIONS --maps OURS32,REF32,REF64
"""

import argparse
import csv
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_reference import read_safetensors  # noqa: E402

TOL_F64 = 1e-9
F32_FACTOR = 2.0
F32_SLACK = 0.005
MAP_TOL = 0.01


def losses(path):
    with open(path) as f:
        return np.array([float(r["loss"]) for r in csv.DictReader(f)])


def ours(work, kind, name, iterations):
    loss = losses(os.path.join(work, "ours" + kind, "loss", name + ".csv"))
    weights, _ = read_safetensors(os.path.join(work, "dump" + kind, "weights_%06d.safetensors" % iterations))
    return loss, {k: v.astype(np.float64) for k, v in weights.items()}


def reference(work, folder):
    loss = losses(os.path.join(work, folder, "loss.csv"))
    state = torch.load(os.path.join(work, folder, "final.pth"), map_location="cpu")
    weights = {k: v.double().numpy() for k, v in state.items() if v.is_floating_point()}
    return loss, weights


def loss_diff(a, b):
    """Relative difference of each iteration's loss."""
    if len(a) != len(b):
        sys.exit("train_parity.py: %d against %d iterations" % (len(a), len(b)))
    return np.abs(a - b) / np.abs(b)


def weight_diff(a, b):
    """The largest relative distance ||a - b|| / ||b|| over the tensors (running statistics
    included)."""
    if sorted(a) != sorted(b):
        sys.exit("train_parity.py: different tensors: %s" % sorted(set(a) ^ set(b)))
    worst = 0.0
    for k in a:
        norm = np.linalg.norm(b[k])
        if norm > 0:
            worst = max(worst, np.linalg.norm(a[k] - b[k]) / norm)
    return worst


def tail_mean_diff(a, b):
    """Relative difference of the mean loss over the last fifth of the run."""
    n = max(1, len(a) // 5)
    return abs(a[-n:].mean() - b[-n:].mean()) / abs(b[-n:].mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work")
    parser.add_argument("name")
    parser.add_argument("iterations", type=int)
    parser.add_argument("--maps", required=True, help="OURS32,REF32,REF64: VOC07 mAPs of the float32 runs and PyTorch float64's")
    args = parser.parse_args()
    map_ours, map_ref32, map_ref64 = (float(x) for x in args.maps.split(","))

    ours64, w_ours64 = ours(args.work, "64", args.name, args.iterations)
    burn64, w_burn64 = reference(args.work, "ref64burn")
    exact64, w_exact64 = reference(args.work, "ref64exact")
    ours32, w_ours32 = ours(args.work, "32", args.name, args.iterations)
    ref32, w_ref32 = reference(args.work, "ref32")
    ref64, w_ref64 = reference(args.work, "ref64")

    f64_loss, f64_weights = loss_diff(ours64, burn64).max(), weight_diff(w_ours64, w_burn64)
    exact_loss, exact_weights = loss_diff(ours64, exact64).max(), weight_diff(w_ours64, w_exact64)
    first_exact = int(np.argmax(loss_diff(ours64, exact64) > TOL_F64)) + 1 if (loss_diff(ours64, exact64) > TOL_F64).any() else None

    ours_d, torch_d = loss_diff(ours32, ref64), loss_diff(ref32, ref64)
    stats = {
        "median loss": (np.median(ours_d), np.median(torch_d)),
        "last-fifth mean loss": (tail_mean_diff(ours32, ref64), tail_mean_diff(ref32, ref64)),
        "final weights": (weight_diff(w_ours32, w_ref64), weight_diff(w_ref32, w_ref64)),
    }
    direct = loss_diff(ours32, ref32)

    failures = []
    if not f64_loss <= TOL_F64:
        failures.append("float64 loss differs by %.1e (tolerance %.0e)" % (f64_loss, TOL_F64))
    if not f64_weights <= TOL_F64:
        failures.append("float64 final weights differ by %.1e (tolerance %.0e)" % (f64_weights, TOL_F64))
    for what, (o, t) in stats.items():
        if not o <= F32_FACTOR * t + F32_SLACK:
            failures.append("float32 %s: %.4f from PyTorch float64, against PyTorch float32's %.4f (allowed %.1fx + %.3f)"
                            % (what, o, t, F32_FACTOR, F32_SLACK))
    map_gap = min(abs(map_ours - map_ref32), abs(map_ours - map_ref64))
    map_tol = max(MAP_TOL, F32_FACTOR * abs(map_ref32 - map_ref64))
    if not map_gap <= map_tol or any(math.isnan(m) for m in (map_ours, map_ref32, map_ref64)):
        failures.append("mAP %.4f against PyTorch's %.4f (float32) and %.4f (float64): %.4f from the nearer "
                        "(tolerance %.4f)" % (map_ours, map_ref32, map_ref64, map_gap, map_tol))

    print("%s, %d iterations: float64 loss %.1e, weights %.1e (%.1e / %.1e with PyTorch's exact momentum and weight "
          "decay%s); float32 against PyTorch float64: median loss %.2f%% (PyTorch float32 %.2f%%), last fifth %.2f%% "
          "(%.2f%%), weights %.2f%% (%.2f%%); float32 against PyTorch float32: loss within %.1e up to iteration %s, "
          "largest %.1f%%; mAP %.4f, PyTorch %.4f (float32) / %.4f (float64)" % (
              args.name, args.iterations, f64_loss, f64_weights, exact_loss, exact_weights,
              "" if first_exact is None else ", above %.0e from iteration %d" % (TOL_F64, first_exact),
              100 * stats["median loss"][0], 100 * stats["median loss"][1],
              100 * stats["last-fifth mean loss"][0], 100 * stats["last-fifth mean loss"][1],
              100 * stats["final weights"][0], 100 * stats["final weights"][1],
              1e-4, first_above(direct, 1e-4), 100 * direct.max(), map_ours, map_ref32, map_ref64))
    for f in failures:
        print("  FAIL " + f)
    sys.exit(1 if failures else 0)


def first_above(diff, tol):
    """The last iteration (1-based) before the first one whose difference exceeds `tol`."""
    above = np.nonzero(diff > tol)[0]
    return len(diff) if len(above) == 0 else int(above[0])


if __name__ == "__main__":
    main()
