"""Full-size FCN-8s calibration at 512x512 with 100 images: wall time and peak memory.

    PYTHONPATH=. python benchmarks/calibrate_fullsize.py [--size 512] [--images 100] [--work DIR]

1. A full-size FCN-8s (VGG16 trunk, 134 M parameters, 21 classes, aligned geometry,
   random weights with non-zero score layers) is saved and exported with
   ``fcn-edge export`` (frames -> labels, no PyTorch check) in a child process.
2. ``fcn-edge write_calibration_set``: 100 synthetic 512x512 images and their list file.
3. ``fcn-edge calibrate MODEL.onnx --images calib.txt --num 100 --eval-images 5`` in a
   fresh child process (all defaults otherwise: entropy, trt8, keep ConvTranspose float;
   the label-free agreement check on 5 images; sensitivity is off by default at this size),
   timed, with the child's own peak RSS (``ru_maxrss``) and the per-phase seconds the
   command reports.

Writes benchmarks/results/calibrate_fullsize.json.  ``--work DIR`` keeps the checkpoint,
ONNX and images for reruns.  Timings on the shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._models import child_env  # noqa: E402 - after the path insert


def make_fullsize_onnx(work: Path, size: tuple[int, int], name: str = "fcn8s_full") -> Path:
    """Checkpoint + fcn-edge export of the full-size FCN-8s at ``size`` (reused when present)."""
    onnx_path = work / f"{name}_{size[0]}x{size[1]}.onnx"
    if onnx_path.is_file():
        return onnx_path
    ckpt = work / f"{name}.pt"
    code = f"""
import torch
from fcn_edge.checkpoint import save_model
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.models import build_model
from fcn_edge.export import ExportConfig, export_onnx
from pathlib import Path
ckpt = Path({str(ckpt)!r})
if not ckpt.is_file():
    torch.manual_seed(0)
    model = build_model("fcn8s", 21, "aligned", 1.0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("score"):
                p.normal_(0, 0.01)
    save_model(ckpt, model, ModelInfo(arch="fcn8s", num_classes=21, geometry="aligned", width=1.0))
export_onnx(str(ckpt), {str(onnx_path)!r}, ExportConfig(size={tuple(size)!r}, verify=False))
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
    return onnx_path


def child_calibrate(argv: list[str]) -> None:
    """Run ``fcn-edge calibrate`` in this process and print its peak RSS (for the parent)."""
    from fcn_edge.cli import main

    start = time.perf_counter()
    code = main(["calibrate", *argv])
    print("CHILD_RESULT " + json.dumps({"exit": code, "wall_s": round(time.perf_counter() - start, 1),
                                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--work", type=Path, help="keep artifacts here (default: a temporary folder)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child_calibrate(args.child)
        return
    from benchmarks._machine import write_result
    from fcn_edge.data.synth import write_calibration_set

    with tempfile.TemporaryDirectory(prefix="fcn-edge-calib-bench-") as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        size = (args.size, args.size)
        t0 = time.perf_counter()
        onnx_path = make_fullsize_onnx(work, size)
        prepare_s = time.perf_counter() - t0
        images = work / f"calib{args.size}"
        listing = images.with_name(images.name + ".txt")
        if not listing.is_file():
            write_calibration_set(images, args.images, size=size, num_classes=17, overwrite=True)
        out = work / "fcn8s_full.int8.onnx"
        report_json = work / "calibrate_report.json"
        argv = [str(onnx_path), "--images", str(listing), "--num", str(args.images), "-o", str(out),
                "--eval-images", "5", "--json", str(report_json)]
        command = "fcn-edge calibrate " + " ".join(argv)
        print(command, flush=True)
        completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *argv],
                                   env=child_env(), capture_output=True, text=True)
        sys.stderr.write(completed.stderr[-3000:])
        lines = [ln for ln in completed.stdout.splitlines() if ln.startswith("CHILD_RESULT ")]
        if completed.returncode != 0 or not lines:
            print(completed.stdout[-3000:])
            raise SystemExit(f"calibrate failed ({completed.returncode})")
        child = json.loads(lines[-1].split(" ", 1)[1])
        report = json.loads(report_json.read_text())
        result = {
            "command": "PYTHONPATH=. python benchmarks/calibrate_fullsize.py",
            "calibrate_command": command,
            "note": "noisy, shared 2-core machine",
            "model": "FCN-8s full size (134 M parameters), 21 classes, aligned, random weights",
            "size": list(size), "images": args.images,
            "wall_s": child["wall_s"], "peak_rss_mb": child["peak_rss_mb"], "exit": child["exit"],
            "phases_s": report["seconds"], "onnx_mb": round(onnx_path.stat().st_size / 1e6, 1),
            "int8_onnx_mb": round(out.stat().st_size / 1e6, 1),
            "cache_lines": sum(1 for _ in open(report["cache"])) - 1 if report.get("cache") else None,
            "quantized_nodes": len(report["quantized_nodes"]), "activation_qdq": report["activation_qdq"],
            "weight_qdq": report["weight_qdq"], "accuracy": report["accuracy"],
            "prepare_s": round(prepare_s, 1),
        }
        print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}, indent=1))
        print(f"wrote {write_result('calibrate_fullsize', result)}")


if __name__ == "__main__":
    main()
