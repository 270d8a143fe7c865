"""GPU comparison: full-size FCN-8s at 512x512, batch 1 and 8, on every backend fcn-edge has.

    python benchmarks/gpu_compare.py                         # on a GPU machine (about 2-5 minutes without TensorRT)
    python benchmarks/gpu_compare.py --device cpu --size 256x256 --iterations 3 --batches 1   # reduced, any machine

Rows (each through ``fcn-edge bench``'s Python API, :func:`fcn_edge.bench.run_bench`,
in one comparison table with ratios to PyTorch FP32 and pixel agreement with it):

* PyTorch eager FP32 and FP16 (autocast) on ``--device`` (``.pt`` runner: frames to the
  device, forward, ``.cpu()`` of the labels).
* ONNX Runtime with the CUDA execution provider when this onnxruntime has it, else the
  CPU provider (said so in the output); CPU rows run only ``--ort-cpu-batches`` (default
  1) for ``--ort-cpu-iterations`` batches, because batch 8 of a full-size FCN-8s takes
  seconds per batch on a CPU.
* TensorRT FP32 / FP16 / INT8 engines built with ``fcn-edge build-engine``'s Python API
  (:func:`fcn_edge.engine.build.run_build`) when TensorRT is importable, else recorded
  as "TensorRT not installed".  INT8 needs a Q/DQ ONNX from the calibrate stage
  (``fcn_edge.calib.calibrate_onnx``, imported only then; if it is missing the INT8 row
  says so).  Calibration uses synthetic frames: fine for speed, meaningless for accuracy.
  Engines get one optimisation profile for batch 1..max (opt = the largest batch) unless
  ``--engine-per-batch``; TensorRT rows also run pipelined with ``--in-flight`` batches.

Weights are random (speed does not depend on them); geometry is ``aligned`` (the
deployment geometry); 21 classes; the ONNX (frames in, labels out, dynamic batch) is
exported once and reused, with ``verify=False``: export verification is tested by the
export stage and costs tens of seconds at full size.  Writes
``benchmarks/results/<--name>.json`` (default ``gpu_compare``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRT_PRECISIONS = ("fp32", "fp16", "int8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="PyTorch device (cuda, cuda:1, cpu); default cuda")
    p.add_argument("--size", default="512x512", help="network input HxW (default 512x512)")
    p.add_argument("--batches", default="1,8", help="batch sizes (default 1,8)")
    p.add_argument("--iterations", type=int, default=100, help="timed batches per row (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up batches per row (default 10)")
    p.add_argument("--in-flight", type=int, default=2, help="pipelined rows for backends that overlap work (default 2)")
    p.add_argument("--ort-providers", choices=("auto", "cuda", "cpu"), default="auto",
                   help="ONNX Runtime provider: auto = CUDA when available (default)")
    p.add_argument("--ort-cpu-batches", default="1", help="batch sizes for ONNX Runtime on the CPU (default 1)")
    p.add_argument("--ort-cpu-iterations", type=int, default=10, help="timed batches for ONNX Runtime on the CPU (default 10)")
    p.add_argument("--trt", default=",".join(TRT_PRECISIONS), help="TensorRT precisions to build (default fp32,fp16,int8; '' for none)")
    p.add_argument("--engine-per-batch", action="store_true", help="build a static-batch engine per batch size")
    p.add_argument("--calib-images", type=int, default=32, help="synthetic calibration frames for INT8 (default 32)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True for PyTorch rows")
    p.add_argument("--width", type=float, default=1.0, help="model width multiplier (1.0 = the real FCN-8s; less only for testing)")
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--workdir", type=Path, help="keep checkpoint/ONNX/engines here (default: a temporary folder, removed)")
    p.add_argument("--name", default="gpu_compare", help="results file name (default gpu_compare)")
    p.add_argument("--results-dir", type=Path, help="write the JSON here instead of benchmarks/results")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[gpu_compare] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ artifacts
def make_checkpoint(path: Path, classes: int, width: float) -> None:
    import torch

    from fcn_edge.checkpoint import save_model
    from fcn_edge.artifacts.modelinfo import ModelInfo
    from fcn_edge.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn8s", classes, "aligned", width)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.01)  # random but not all-zero scores, so labels vary
    save_model(path, model, ModelInfo(arch="fcn8s", num_classes=classes, geometry="aligned", width=width))


def export_once(checkpoint: Path, out: Path, size: tuple[int, int], max_batch: int) -> dict[str, Any]:
    from fcn_edge.export import ExportConfig, export_onnx

    dynamic = max_batch > 1  # a batch range of 1..1 is a static batch
    config = ExportConfig(size=size, batch=max_batch, dynamic=("batch",) if dynamic else (),
                          min_shape=(1, *size) if dynamic else None, max_shape=(max_batch, *size) if dynamic else None,
                          verify=False)
    report = export_onnx(checkpoint, out, config)
    return {"file_mb": round(report.file_bytes / 1e6, 1), "nodes": report.node_count, "seconds": report.seconds,
            "batch": [1, max_batch, max_batch] if dynamic else 1, "verify": False,
            "verify_note": "export verification (ONNX Runtime vs PyTorch) skipped here: the export stage's tests "
                           "cover it, and at full size it costs tens of seconds"}


def write_calibration_frames(folder: Path, count: int, size: tuple[int, int]) -> Path:
    import cv2

    from fcn_edge.runtime.synthetic import synthetic_frames

    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(synthetic_frames(count, size[0], size[1], seed=1)):
        cv2.imwrite(str(folder / f"calib_{index:04d}.png"), frame)
    return folder


# ------------------------------------------------------------------ TensorRT
def tensorrt_status() -> tuple[Any, str | None]:
    """(BuildEnvironment, None) or (None, reason) -- the reason is what the row says."""
    from fcn_edge.engine.environment import detect_build_environment, import_tensorrt
    from fcn_edge.errors import FcnEdgeError

    trt, problem = import_tensorrt()
    if trt is None:
        return None, "TensorRT not installed"
    try:
        return detect_build_environment(), None
    except FcnEdgeError as exc:
        return None, str(exc)


def make_int8_onnx(onnx_path: Path, workdir: Path, env, args, size: tuple[int, int]) -> tuple[Path | None, str | None]:
    try:
        from fcn_edge.calib import calibrate_onnx  # built on another branch; optional here
    except ImportError as exc:
        return None, f"the calibrate stage (fcn_edge.calib.calibrate_onnx) is not in this install ({exc})"
    from fcn_edge.artifacts.trt_versions import calibrate_target_for
    from fcn_edge.errors import FcnEdgeError

    images = write_calibration_frames(workdir / "calib", args.calib_images, size)
    output = workdir / f"{onnx_path.stem}.int8.onnx"
    try:
        # the call build-engine's --calib makes (fcn_edge/engine/build.py: _calibrate_now)
        result = calibrate_onnx(onnx_path, images=str(images), output=output, target=calibrate_target_for(env.trt_version))
    except (FcnEdgeError, TypeError) as exc:
        return None, f"calibration failed: {exc}"
    candidate = getattr(result, "path", result)
    path = Path(candidate) if isinstance(candidate, (str, os.PathLike)) else output
    if not path.exists():
        return None, f"calibrate_onnx finished but wrote no {path}"
    return path, None


def build_engines(onnx_path: Path, workdir: Path, args, size, batches) -> tuple[list[dict], dict]:
    """Build the requested engines; returns (variants, facts)."""
    precisions = [p.strip() for p in args.trt.split(",") if p.strip()]
    variants: list[dict] = []
    if not precisions:
        return variants, {"status": "not requested"}
    env, reason = tensorrt_status()
    if env is None:
        for precision in precisions:
            variants.append({"label": f"TensorRT {precision.upper()}", "status": "not run", "reason": reason})
        return variants, {"status": reason}
    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions
    from fcn_edge.errors import FcnEdgeError

    facts: dict[str, Any] = {"tensorrt": str(env.trt_version), "gpu": env.gpu.name, "builds": []}
    int8_source, int8_reason = (None, None)
    if "int8" in precisions:
        started = time.perf_counter()
        int8_source, int8_reason = make_int8_onnx(onnx_path, workdir, env, args, size)
        facts["calibration_s"] = round(time.perf_counter() - started, 1)
    groups = [tuple(batches)] if not args.engine_per_batch else [(b,) for b in batches]
    for precision in precisions:
        source = onnx_path if precision != "int8" else int8_source
        for group in groups:
            label = f"TensorRT {precision.upper()}" + (f" (batch {group[0]} engine)" if args.engine_per_batch else "")
            if source is None:
                variants.append({"label": label, "status": "not run", "reason": int8_reason})
                continue
            lo, hi = min(group), max(group)
            shape = lambda n: f"{n}x{size[0]}x{size[1]}x3"  # noqa: E731
            options = BuildOptions(precision=precision, timing_cache=str(workdir / "timing.cache"),
                                   min_shape=shape(lo), opt_shape=shape(hi), max_shape=shape(hi))
            engine = workdir / f"fcn8s.{precision}.b{lo}-{hi}.engine"
            started = time.perf_counter()
            try:
                run_build(BuildRequest(onnx=source, options=options, output=engine), emit=log)
            except FcnEdgeError as exc:
                variants.append({"label": label, "status": "not run", "reason": f"build failed: {exc}"})
                continue
            seconds = round(time.perf_counter() - started, 1)
            facts["builds"].append({"label": label, "seconds": seconds, "engine_mb": round(engine.stat().st_size / 1e6, 1)})
            variants.append({"label": label, "status": "built", "model": str(engine), "batches": group,
                             "options": {}, "build_s": seconds})
    return variants, facts


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from fcn_edge.bench import BenchConfig, ModelSpec, parse_batches, parse_size, run_bench

    size = parse_size(args.size)
    batches = parse_batches(args.batches)
    ort_cpu_batches = tuple(b for b in parse_batches(args.ort_cpu_batches) if b in batches) or batches[:1]
    started = time.perf_counter()
    stages: dict[str, float] = {}

    import torch

    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fcn-gpu-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        checkpoint = workdir / "fcn8s.pt"
        t = time.perf_counter()
        make_checkpoint(checkpoint, args.classes, args.width)
        stages["checkpoint_s"] = round(time.perf_counter() - t, 1)
        log(f"checkpoint {checkpoint} ({checkpoint.stat().st_size / 1e6:.0f} MB) in {stages['checkpoint_s']} s")
        onnx_path = workdir / "fcn8s.onnx"
        t = time.perf_counter()
        export = export_once(checkpoint, onnx_path, size, max(batches))
        stages["export_s"] = round(time.perf_counter() - t, 1)
        log(f"exported {onnx_path} ({export['file_mb']} MB) in {stages['export_s']} s, verify=False "
            "(export verification is covered by the export stage's tests)")

        variants: list[dict] = []
        device = args.device
        cuda_ok = torch.cuda.is_available()
        for precision in ("fp32", "fp16"):
            variants.append({"label": f"PyTorch eager {precision.upper()}", "status": "to run", "model": str(checkpoint),
                             "options": {"device": device, "precision": precision}, "batches": batches})

        import onnxruntime as ort

        available = ort.get_available_providers()
        wants_cuda = args.ort_providers == "cuda" or (args.ort_providers == "auto" and device.startswith("cuda"))
        if wants_cuda and "CUDAExecutionProvider" in available:
            ort_label, ort_options, ort_batches, ort_iters = "ONNX Runtime CUDA EP", {"providers": "cuda"}, batches, None
            ort_note, ort_warmup = None, None
        else:
            ort_batches, ort_iters = ort_cpu_batches, min(args.ort_cpu_iterations, args.iterations)
            ort_warmup = min(args.warmup, 2)
            reason = ("this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)" if wants_cuda
                      else f"the CPU provider was asked for (--device {device} / --ort-providers {args.ort_providers})")
            ort_note = (f"ONNX Runtime ran on the CPU: {reason}; batches {list(ort_batches)} only, {ort_iters} timed "
                        f"batches after {ort_warmup} warm-up (--ort-cpu-batches, --ort-cpu-iterations)")
            ort_label, ort_options = "ONNX Runtime CPU EP", {"providers": "cpu"}
            log(ort_note)
        variants.append({"label": ort_label, "status": "to run", "model": str(onnx_path), "options": ort_options,
                         "batches": ort_batches, "iterations": ort_iters, "warmup": ort_warmup})

        t = time.perf_counter()
        trt_variants, trt_facts = build_engines(onnx_path, workdir, args, size, batches)
        stages["tensorrt_build_s"] = round(time.perf_counter() - t, 1)
        variants += trt_variants

        specs = [ModelSpec(v["model"], v.get("options") or {}, label=v["label"], batches=tuple(v["batches"]),
                           iterations=v.get("iterations"), warmup=v.get("warmup"))
                 for v in variants if v["status"] in ("to run", "built")]
        config = BenchConfig(iterations=args.iterations, warmup=args.warmup, batches=batches, size=size,
                             in_flight=args.in_flight, compare=True, check_agreement=True, keep_going=True)
        t = time.perf_counter()
        report = run_bench(specs, config, emit=log)
        stages["bench_s"] = round(time.perf_counter() - t, 1)
        report.command = [sys.executable.rsplit("/", 1)[-1], "benchmarks/gpu_compare.py", *(argv if argv is not None else sys.argv[1:])]
        if ort_note:
            report.notes.append(ort_note)
        report.notes.append(f"ONNX exported once with verify=False ({export['verify_note']})")
        if device.startswith("cuda") and not cuda_ok:
            report.notes.append(f"torch {torch.__version__} has no CUDA: PyTorch rows could not run on {device}")
        if device.startswith("cuda") and cuda_ok:
            report.notes.append(
                f"PyTorch on {torch.cuda.get_device_name(0)}: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} "
                f"(FP32 convolutions run as TF32 on Ampere and newer when True, torch's default), "
                f"cudnn.benchmark={torch.backends.cudnn.benchmark}")
        for variant in variants:
            if variant["status"] == "not run":
                report.add_unavailable(variant["label"], variant["reason"], backend="tensorrt")
        for model in report.models:
            for variant in variants:
                if variant["label"] == model.label:
                    variant["status"] = "not run" if model.error else "measured"
                    if model.error:
                        variant["reason"] = model.error
        stages["total_s"] = round(time.perf_counter() - started, 1)

        full = device.startswith("cuda") and size == (512, 512) and set(batches) >= {1, 8} and args.width == 1.0
        print(f"## FCN-8s {'full-size' if args.width == 1.0 else f'width {args.width}'} at {size[0]}x{size[1]}, "
              f"device {device}{'' if full else ' (reduced run, not the GPU comparison)'}\n")
        print(report.markdown(), end="")
        print(f"\nstages: {stages}")
        if not args.no_write:
            from benchmarks._machine import write_result

            payload = {
                "command": " ".join(report.command),
                "full_run": full,
                "note": ("figures from a reduced run (device/size/batches/width differ from the GPU comparison)"
                         if not full else "GPU comparison run"),
                "model": {"arch": "fcn8s", "classes": args.classes, "width": args.width, "geometry": "aligned",
                          "size": list(size), "weights": "random (speed does not depend on them)",
                          "io": "frames (uint8 NHWC) -> labels (uint8)"},
                "device": device, "cuda_available": cuda_ok, "torch": torch.__version__,
                "onnxruntime": {"version": ort.__version__, "providers": available},
                "cudnn_benchmark": bool(args.cudnn_benchmark), "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                "export": export, "tensorrt": trt_facts, "stages_s": stages,
                "variants": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in variant.items()}
                             for variant in variants],
                "bench": report.to_dict(),
            }
            print(f"wrote {write_result(args.name, payload, args.results_dir)}", file=sys.stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
