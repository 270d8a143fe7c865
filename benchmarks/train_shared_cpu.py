"""Training on a shared CPU: one ``fcn-edge train`` alone vs two at once, per setting.

Issue 19: two ``fcn-edge demo`` runs at once on the 2-core machine made training 13x
slower instead of about 2x.  This runs the demo's training (``SYNTHETIC_DEMO``: width
1/8 FCN-8s, batches of 8 128x128 images, the default 2 DataLoader workers) for
``--iterations`` through the real command line, once alone and then twice at the same
time, for each variant of the environment, and records the wall time of each.

Variants (``--variants``):
  ``shipped``       the command as it is: fcn-edge sets ``GOMP_SPINCOUNT=10000`` (OpenMP
                    threads spin briefly, then sleep; fcn_edge/threads.py)
  ``before``        ``OMP_WAIT_POLICY=""``: libgomp's default (spin 300,000 iterations, then
                    sleep), what fcn-edge did before; libgomp prints one "Invalid value" line
                    and uses its default (a set OMP_WAIT_POLICY also keeps fcn-edge's hands off)
  ``passive``       ``OMP_WAIT_POLICY=PASSIVE``: threads sleep at once (the first fix tried)
  ``omp-active``    ``OMP_WAIT_POLICY=ACTIVE``: OpenMP threads always spin
  ``threads-1``     ``--threads 1`` (with the shipped setting)
  ``workers-0``     ``--workers 0`` (no DataLoader processes; with the shipped setting)

Goal: two concurrent trainings each within 2.6x of one alone, and one alone no slower
than before.  The machine may be shared with other work: the load average is recorded
with the result, and the figures are only as quiet as the machine was.

    flock /tmp/fcn-edge-bench.lock python -m benchmarks.train_shared_cpu [--iterations 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._machine import load_average, write_result

RESULTS_TITLE = "Training on a shared CPU (`benchmarks/train_shared_cpu.py`)"
REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "shipped": ({}, []),
    "before": ({"OMP_WAIT_POLICY": ""}, []),
    "omp-active": ({"OMP_WAIT_POLICY": "ACTIVE"}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "threads-1": ({}, ["--threads", "1"]),
    "workers-0": ({}, ["--workers", "0"]),
}


def train_command(data: Path, out: Path, iterations: int, extra: list[str]) -> list[str]:
    """``fcn-edge train`` with the demo's settings (see fcn_edge/train/presets.py)."""
    return [sys.executable, "-m", "fcn_edge", "train", "--data", str(data), "--out", str(out), "--arch", "fcn8s",
            "--width", "1/8", "--iterations", str(iterations), "--batch-size", "8", "--lr", "1e-3",
            "--crop", "128x128", "--scale-range", "1,1", "--warmup", "20", "--val-interval", str(iterations),
            "--val-limit", "20", "--device", "cpu", "--no-tensorboard", "--overwrite", *extra]


def clean_env(changes: dict[str, str]) -> dict[str, str]:
    """:func:`benchmarks._models.child_env` without the thread settings a variant decides, plus ``changes``."""
    from benchmarks._models import child_env

    env = {k: v for k, v in child_env().items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                             "GOMP_SPINCOUNT")}
    env["FCN_EDGE_PROGRESS"] = "0"
    env.update(changes)
    return env


def run_together(commands: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start every command at once; the wall seconds of each."""
    started = time.perf_counter()
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for c in commands]
    seconds = []
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"training failed ({process.returncode}):\n{err[-2000:]}")
        seconds.append(round(time.perf_counter() - started, 2))
    return seconds


def measure(variant: str, data: Path, work: Path, iterations: int) -> dict:
    changes, extra = VARIANTS[variant]
    env = clean_env(changes)
    alone = run_together([train_command(data, work / f"{variant}-alone", iterations, extra)], env)[0]
    pair = run_together([train_command(data, work / f"{variant}-{i}", iterations, extra) for i in (1, 2)], env)
    worst = max(pair)
    row = {"variant": variant, "env": changes, "options": extra, "alone_s": alone, "together_s": pair,
           "slowdown": round(worst / alone, 2), "goal_met": worst <= 2.6 * alone}
    print(f"{variant:<12} alone {alone:7.1f} s   two at once {pair[0]:7.1f} / {pair[1]:7.1f} s   "
          f"slowdown {row['slowdown']:.2f}x", flush=True)
    return row


def results_markdown(data: dict) -> list[str]:
    lines = [f"{data['iterations']} iterations of the demo's training (`{data.get('train_command')}`), wall time per "
             "process "
             f"including start-up. Goal: two at once each within 2.6x of one alone. Load average before: "
             f"{data.get('load_before')}.", "",
             "| variant | alone s | two at once s | slowdown | goal |", "| --- | --- | --- | --- | --- |"]
    for row in data["rows"]:
        lines.append(f"| {row['variant']} | {row['alone_s']} | {' / '.join(str(s) for s in row['together_s'])} | "
                     f"{row['slowdown']}x | {'met' if row['goal_met'] else 'NOT met'} |")
    ratio = (data.get("verdict") or {}).get("alone_shipped_vs_before")
    if ratio is not None:
        lines += ["", f"One alone, shipped / before: {ratio} (below 1: faster than before)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100, help="training iterations per run (default 100)")
    parser.add_argument("--variants", default="shipped,passive,before", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--out", default="train_shared_cpu", help="result name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")

    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-") as tmp:
        work = Path(tmp)
        write_synthetic_dataset(work / "data", SynthConfig(), show_progress=False)
        rows = [measure(v, work / "data", work, args.iterations) for v in variants]
    command = " ".join(train_command(Path("data"), Path("out"), args.iterations, [])[3:])
    by_name = {row["variant"]: row for row in rows}
    verdict = {}
    if "shipped" in by_name:
        verdict["two_at_once_within_2.6x"] = by_name["shipped"]["goal_met"]
    if "shipped" in by_name and "before" in by_name:
        verdict["alone_shipped_vs_before"] = round(by_name["shipped"]["alone_s"] / by_name["before"]["alone_s"], 3)
    path = write_result(args.out, {"iterations": args.iterations,
                                   "command": "python -m benchmarks.train_shared_cpu " + " ".join(sys.argv[1:]),
                                   "train_command": "fcn-edge " + command,
                                   "load_before": load_before, "rows": rows, "verdict": verdict,
                                   "note": "2-core machine shared with other work; see load_before and machine"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
