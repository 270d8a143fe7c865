"""Time ConfusionMatrix.update on one Cityscapes-sized label map pair.

1024x2048 uint8 target and prediction, 21 classes, about 5 % ignore (255) pixels in the
target; the figure is the median of --runs updates (after --warmup).  The goal in
issue 2 is under 30 ms per update.  Timings on a shared machine are noisy.

    python -m benchmarks.metrics_update [--runs 30] [--height 1024 --width 2048 --classes 21]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks._machine import write_result
from fcn_edge.metrics import ConfusionMatrix


def make_maps(height: int, width: int, classes: int, ignore_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, (height, width), dtype=np.uint8)
    target[rng.random((height, width)) < ignore_fraction] = 255
    prediction = target.copy()
    wrong = rng.random((height, width)) < 0.2
    prediction[wrong] = rng.integers(0, classes, int(wrong.sum()), dtype=np.uint8)
    prediction[prediction == 255] = 0
    return target, prediction


def time_updates(target, prediction, classes: int, runs: int, warmup: int) -> list[float]:
    cm = ConfusionMatrix(classes)
    for _ in range(warmup):
        cm.update(target, prediction)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        cm.update(target, prediction)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--ignore", type=float, default=0.05, help="fraction of ignore pixels in the target")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write results/")
    args = parser.parse_args(argv)
    target, prediction = make_maps(args.height, args.width, args.classes, args.ignore)
    results = {}
    for dtype in ("uint8", "int64"):
        t, p = target.astype(dtype), prediction.astype(dtype)
        times = time_updates(t, p, args.classes, args.runs, args.warmup)
        results[dtype] = {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
                          "max_ms": round(max(times), 3), "runs": args.runs}
        print(f"{dtype:6s} {args.height}x{args.width}, {args.classes} classes: median {statistics.median(times):.2f} ms "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)")
    payload = {
        "what": "ConfusionMatrix.update on one label-map pair",
        "shape": [args.height, args.width],
        "classes": args.classes,
        "ignore_fraction": args.ignore,
        "goal_ms": 30.0,
        "median_ms": results["uint8"]["median_ms"],
        "by_dtype": results,
        "note": "shared machine with other work running: noisy; re-run on a quiet machine for RESULTS.md",
    }
    if not args.no_write:
        print(f"wrote {write_result('metrics_update', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
