"""``fcn-edge demo`` from nothing, recorded: time per stage and the variant table, with the machine.

README's demo table and its total time quote this result, so a newcomer can compare
their own run (the demo prints the same table and writes the same summary.json) with
a figure that says which machine and load produced it.  It runs the real command in a
temporary folder (``--fresh``) and saves the demo's own ``report/summary.json`` plus
the wall time of the whole command.

    flock /tmp/fcn-edge-bench.lock python -m benchmarks.demo_summary [--threads N] [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._machine import load_average, write_result
from benchmarks._models import child_env

RESULTS_TITLE = "`fcn-edge demo` from nothing (`benchmarks/demo_summary.py`)"
REPO = Path(__file__).resolve().parents[1]


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_markdown(data: dict) -> list[str]:
    """Stages, the variant table and the INT8 calibration check, as the demo's report has them."""
    summary = data.get("summary") or {}
    lines = [f"`{data.get('demo_command')}`: {data.get('wall_seconds')} s wall for the whole command "
             f"(the demo's own total: {summary.get('total_seconds')} s); load average before: "
             f"{data.get('load_before')}.", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} |" for s in summary.get("steps") or []]
    lines += ["", "| variant | mean IU | pixel acc. | agreement with PyTorch FP32 | p50 ms | p95 ms | FPS |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in summary.get("variants") or []:
        metrics, latency = v.get("metrics") or {}, v.get("latency_ms") or {}
        lines.append(f"| {v['name']} | {_pct(metrics.get('mean_iu'))} | {_pct(metrics.get('pixel_accuracy'))} | "
                     f"{_pct(v.get('agreement'))} | {_num(latency.get('p50'))} | {_num(latency.get('p95'))} | "
                     f"{_num(v.get('fps'), 1)} |")
    calibration = summary.get("calibration") or {}
    lines.append("")
    for placement, facts in calibration.items():
        drop, agreement = facts.get("mean_iu_drop_points"), facts.get("agreement")
        lines.append(f"- INT8 vs FP32 ({facts.get('output')}, {placement} Q/DQ placement, ONNX Runtime CPU, val "
                     f"images): mean IU change {'n/a' if drop is None else f'{-drop:+.2f}'} points, pixel agreement "
                     f"{_pct(agreement)} %")
    for skipped in summary.get("skipped") or []:
        lines.append(f"- skipped {skipped['name']}: {skipped['reason']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="pass --threads to the demo")
    parser.add_argument("--iterations", type=int, default=None, help="pass --iterations to the demo")
    parser.add_argument("--out", default="demo", help="result name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    extra = (["--threads", str(args.threads)] if args.threads else []) + (
        ["--iterations", str(args.iterations)] if args.iterations else [])
    env = child_env()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-demo-") as tmp:
        work = Path(tmp) / "demo_out"
        command = [sys.executable, "-m", "fcn_edge", "demo", "--workdir", str(work), "--fresh", *extra]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            raise SystemExit(f"fcn-edge demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
        summary = json.loads((work / "report" / "summary.json").read_text())
    summary.pop("workdir", None)  # a temporary folder, gone now
    path = write_result(args.out, {"command": "python -m benchmarks.demo_summary " + " ".join(sys.argv[1:]),
                                   "demo_command": "fcn-edge demo" + "".join(f" {e}" for e in extra),
                                   "wall_seconds": wall, "load_before": load_before, "summary": summary,
                                   "stdout": done.stdout.splitlines()[-12:],
                                   "note": "2-core machine possibly shared with other work: see load_before and "
                                           "machine.load_average"})
    print(f"wrote {path} ({wall} s)")


if __name__ == "__main__":
    main()
