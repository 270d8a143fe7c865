"""Full-size FCN-8s: parameter count and CPU forward time at 500x500 in both geometries.

    python benchmarks/model_fullsize.py [--size 500] [--runs 3] [--threads N]

Random weights (speed does not depend on their values).  Writes
benchmarks/results/model_fullsize.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._machine import write_result  # noqa: E402
from fcn_edge.models import MODEL_NAMES, build_model, count_parameters  # noqa: E402


def conv_macs(model: torch.nn.Module, size: int) -> int:
    """Multiply-accumulates of every conv / transposed conv for one size x size image."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, torch.nn.ConvTranspose2d):
            total += inputs[0].numel() * module.out_channels * k // module.groups
        else:
            total += output.numel() * module.in_channels * k // module.groups

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {"parameters": {}, "forward": []}
    for name in MODEL_NAMES:
        rows["parameters"][name] = count_parameters(build_model(name))
    for geometry in ("paper", "aligned"):
        model = build_model("fcn8s", 21, geometry).eval()
        x = torch.randn(1, 3, args.size, args.size)
        macs = conv_macs(model, args.size)
        with torch.no_grad():
            model(x)  # warm-up
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        row = {"model": "fcn8s", "geometry": geometry, "size": args.size, "threads": args.threads,
               "gmacs": round(macs / 1e9, 1), "runs_s": [round(t, 3) for t in times],
               "median_s": round(statistics.median(times), 3)}
        rows["forward"].append(row)
        print(row, flush=True)
    print(rows["parameters"])
    path = write_result("model_fullsize", {"command": "python benchmarks/model_fullsize.py " + " ".join(sys.argv[1:]), **rows})
    print("wrote", path)


if __name__ == "__main__":
    main()
