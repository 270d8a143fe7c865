"""ONNX Runtime CPU latency of the full-size FCN-8s at 256x512: FP32 vs the INT8 Q/DQ graphs.

    PYTHONPATH=. python benchmarks/int8_cpu_latency.py [--threads 2] [--rounds 4] [--runs 5] [--work DIR]

Models (full-size FCN-8s, 21 classes, aligned, random weights, frames -> labels, batch 1):

* ``fp32``: ``fcn-edge export --size 256x512``;
* ``int8``: ``fcn-edge calibrate`` with every default (entropy, trt8, upsampling kept
  float): the TensorRT-oriented graph, Q/DQ only on the inputs of quantized ops;
* ``int8-all``: the same with ``--keep-float none``;
* ``int8-ort`` / ``int8-ort-all``: ``fcn-edge calibrate --placement onnxruntime`` (with and
  without the default keep-float): Q/DQ also on the outputs of quantized ops, the
  ``DQ -> Conv -> Q`` pattern ONNX Runtime's CPU graph optimiser fuses into
  ``QLinearConv`` (integer kernels).

Each model gets an ``onnxruntime.InferenceSession`` (CPU, ``--threads`` intra-op threads,
all graph optimisations); after 3 warm-up runs the models are timed in interleaved
rounds (``--rounds`` x ``--runs`` runs each) so drift on the shared machine hits them
alike.  Reports p50/p95/mean ms and the op types ORT actually runs (from its optimised
graph: QLinearConv vs Conv).  Writes benchmarks/results/int8_cpu_latency.json.
Timings on the shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_models(work: Path, size: tuple[int, int]) -> dict[str, Path]:
    from benchmarks.calibrate_fullsize import make_fullsize_onnx
    from fcn_edge.calib import calibrate_onnx
    from fcn_edge.data.synth import write_calibration_set

    fp32 = make_fullsize_onnx(work, size)
    listing = work / f"calib{size[0]}x{size[1]}.txt"
    if not listing.is_file():
        write_calibration_set(work / f"calib{size[0]}x{size[1]}", 20, size=size, overwrite=True)
    models = {"fp32": fp32}
    variants = {
        "int8": {},
        "int8-all": {"keep_float": ()},
        "int8-ort": {"placement": "onnxruntime"},
        "int8-ort-all": {"placement": "onnxruntime", "keep_float": ()},
    }
    for name, options in variants.items():
        out = work / f"fcn8s_full_{size[0]}x{size[1]}.{name}.onnx"
        if not out.is_file():
            calibrate_onnx(fp32, listing, out, num_images=20, accuracy=False, show_progress=False, **options)
        models[name] = out
    return models


def session(path: Path, threads: int, optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    import onnx

    from benchmarks._machine import write_result

    size = (args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="fcn-edge-int8-latency-") as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        models = build_models(work, size)
        build_s = time.perf_counter() - t0
        frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
        sessions, ops = {}, {}
        for name, path in models.items():
            optimized = work / f"{name}.optimized.onnx"
            sessions[name] = session(path, args.threads, optimized)
            ops[name] = dict(Counter(n.op_type for n in onnx.load(str(optimized), load_external_data=False).graph.node)
                             .most_common())
            for _ in range(3):
                sessions[name].run(None, {"frames": frame})
        times: dict[str, list[float]] = {name: [] for name in models}
        agree = {}
        reference = sessions["fp32"].run(None, {"frames": frame})[0]
        for _ in range(args.rounds):
            for name, sess in sessions.items():
                for _ in range(args.runs):
                    start = time.perf_counter()
                    out = sess.run(None, {"frames": frame})
                    times[name].append((time.perf_counter() - start) * 1000.0)
                agree[name] = float(np.mean(out[0] == reference))
        results = {}
        for name, values in times.items():
            ordered = sorted(values)
            results[name] = {
                "p50_ms": round(statistics.median(ordered), 1),
                "p95_ms": round(ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], 1),
                "mean_ms": round(statistics.fmean(ordered), 1), "runs": len(ordered),
                "file_mb": round(models[name].stat().st_size / 1e6, 1),
                "label_agreement_with_fp32": round(agree[name], 4),
                "ort_ops": {k: v for k, v in ops[name].items() if k in ("Conv", "QLinearConv", "ConvTranspose",
                                                                         "QuantizeLinear", "DequantizeLinear",
                                                                         "QLinearAdd", "MaxPool", "FusedConv",
                                                                         "ConvInteger")},
            }
        fp32_p50 = results["fp32"]["p50_ms"]
        for name in results:
            results[name]["speedup_vs_fp32_p50"] = round(fp32_p50 / results[name]["p50_ms"], 2)
        for name, r in results.items():
            print(f"{name:20s} p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms  x{r['speedup_vs_fp32_p50']:.2f}  "
                  f"ops {r['ort_ops']}")
        path = write_result("int8_cpu_latency", {
            "command": "PYTHONPATH=. python benchmarks/int8_cpu_latency.py",
            "note": "noisy, shared 2-core machine; random weights (latency does not depend on them)",
            "model": "FCN-8s full size, 21 classes, aligned, frames uint8 -> labels, batch 1",
            "size": list(size), "threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs,
            "results": results, "build_s": round(build_s, 1)})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
