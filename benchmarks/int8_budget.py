"""INT8 within an accuracy budget (``fcn-edge calibrate --max-drop/--min-agreement``): the search's time and result.

    PYTHONPATH=. python benchmarks/int8_budget.py --part demo       # ~1 min
    PYTHONPATH=. python benchmarks/int8_budget.py --part fullsize   # many minutes, several GB (run under flock)

Parts (each merged into benchmarks/results/int8_budget.json, so they can run apart):

* ``demo``: the demo model (tests/calib/tiny_trained.py: tiny FCN-8s trained on the
  synthetic scenes, 64x96) calibrated on 40 synthetic train images, judged on the 30
  labelled val images: ``--max-drop 0.5`` (which the default INT8 meets at step 0) and
  a tight ``--min-agreement 99.9`` (which makes the search keep layers float); and the
  same model with a planted activation outlier (the test case) at ``--max-drop 0.5``.
* ``fullsize``: the full-size FCN-8s (134 M parameters, random weights, 21 classes) at
  256x512, 32 synthetic calibration images, ``--min-agreement 99.5`` on 4 held-out
  images, at most 3 layers added (``--max-keep-float 3``).  Random weights give
  near-tied logits, so its agreement figures say how the search behaves and what it
  costs, not what INT8 does to a trained model.

Every run is ``fcn-edge calibrate ... --json`` in a child process; its wall time and
exit code, and the search's table (per step: kept-float layers, mean IU or agreement,
ONNX Runtime CPU latency in the onnxruntime Q/DQ placement) are recorded.  The machine
is a shared 2-core one: timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._models import child_env  # noqa: E402 - after the path insert


def run_calibrate(argv: list[str], report_json: Path) -> dict:
    """``fcn-edge calibrate ARGV --json REPORT`` in a child process: wall time, exit code, the search's record."""
    command = "fcn-edge calibrate " + " ".join(argv)
    print(command, flush=True)
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "fcn_edge", "calibrate", *argv, "--json", str(report_json)],
                               env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(completed.stdout[-4000:], flush=True)
    if completed.returncode not in (0, 1) or not report_json.is_file():
        sys.stderr.write(completed.stderr[-3000:])
        raise SystemExit(f"calibrate failed ({completed.returncode})")
    report = json.loads(report_json.read_text())
    search = report["budget_search"]
    steps = search.get("steps") or (search.get("budget") or {}).get("steps") or []
    return {"command": command, "exit": completed.returncode, "wall_s": round(wall, 1),
            "met": completed.returncode == 0, "table": search["table"], "steps": steps,
            "ranking": search.get("ranking") or (search.get("budget") or {}).get("ranking"),
            "phases_s": report.get("seconds")}


def demo_part(work: Path) -> list[dict]:
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset
    from tests.calib.tiny_trained import export_tiny, plant_activation_outlier, train_tiny_fcn8s

    work.mkdir(parents=True, exist_ok=True)
    data = work / "synth"
    if not data.is_dir():
        write_synthetic_dataset(data, SynthConfig(train=40, val=30, size=(96, 128)), show_progress=False)
    checkpoint = work / "demo.pt"
    if not checkpoint.is_file():
        train_tiny_fcn8s(checkpoint)
    demo = export_tiny(checkpoint, work / "demo.onnx")
    outlier = export_tiny(plant_activation_outlier(checkpoint, work / "outlier.pt"), work / "outlier.onnx")
    runs = []
    for name, model, budget in (("demo, --max-drop 0.5", demo, ["--val", str(data), "--max-drop", "0.5"]),
                                ("demo, --min-agreement 99.9", demo, ["--val", str(data), "--min-agreement", "99.9"]),
                                ("demo + planted outlier, --max-drop 0.5", outlier,
                                 ["--val", str(data), "--max-drop", "0.5"])):
        out = work / f"{model.stem}.{len(runs)}.int8.onnx"
        run = run_calibrate([str(model), "--images", str(data), "--num", "40", "-o", str(out), *budget],
                            work / f"report{len(runs)}.json")
        runs.append({"name": name, **run})
    return runs


def fullsize_part(work: Path) -> list[dict]:
    from benchmarks.calibrate_fullsize import make_fullsize_onnx
    from fcn_edge.data.synth import write_calibration_set

    size = (256, 512)
    work.mkdir(parents=True, exist_ok=True)
    model = make_fullsize_onnx(work, size)
    images = work / "calib256x512"
    listing = images.with_name(images.name + ".txt")
    if not listing.is_file():
        write_calibration_set(images, 36, size=size, num_classes=17, overwrite=True)
    out = work / "fcn8s_full.int8.onnx"
    run = run_calibrate([str(model), "--images", str(listing), "--num", "32", "--eval-images", "4",
                         "--min-agreement", "99.5", "--max-keep-float", "3", "-o", str(out)], work / "report_full.json")
    return [{"name": "full-size FCN-8s 256x512, 32 images, --min-agreement 99.5 --max-keep-float 3", **run}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("demo", "fullsize", "all"), default="demo")
    parser.add_argument("--work", type=Path, help="keep models, images and reports here (default: a temporary folder)")
    args = parser.parse_args()
    from benchmarks._machine import RESULTS_DIR, write_result

    parts = {}
    with tempfile.TemporaryDirectory(prefix="fcn-edge-int8-budget-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.part in ("demo", "all"):
            parts["demo"] = demo_part(work / "demo")
        if args.part in ("fullsize", "all"):
            parts["fullsize"] = fullsize_part(work / "fullsize")
    previous_path = RESULTS_DIR / "int8_budget.json"  # read now: the other part may have been written meanwhile
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    result = {"command": "PYTHONPATH=. python benchmarks/int8_budget.py --part demo|fullsize",
              "note": "shared 2-core machine, noisy timings",
              "demo": previous.get("demo"), "fullsize": previous.get("fullsize"), **parts}
    print(f"wrote {write_result('int8_budget', result)}")


RESULTS_TITLE = "INT8 within an accuracy budget (`fcn-edge calibrate --max-drop/--min-agreement`)"


def results_markdown(data: dict) -> list[str]:
    """The RESULTS.md block (benchmarks/update_results.py): one table per run, as the command prints it."""
    lines = ["Each row: layers the search kept float on top of `--keep-float` (default ConvTranspose), mean IU and its "
             "drop against FP32 in points (+ = INT8 worse), label agreement with FP32, latency on ONNX Runtime CPU "
             "(batch 1, onnxruntime Q/DQ placement, median of 5 runs; a shared, busy 2-core machine, so noisy). "
             "The full-size model has random weights (near-tied logits): its rows show the search's cost and "
             "behaviour, not what INT8 does to a trained model.", ""]
    for part in ("demo", "fullsize"):
        for run in data.get(part) or []:
            lines += [f"**{run['name']}**: {'met' if run['met'] else 'not met (exit 1)'}, {len(run['steps'])} step(s), "
                      f"{run['wall_s']:.0f} s wall for the whole command.", "", "```", *run["table"], "```", ""]
        if not data.get(part):
            lines += [f"({part}: not run yet)", ""]
    return lines


if __name__ == "__main__":
    main()
