"""Full-size FCN-8s export: time and peak memory, exporter comparison, bytes per frame.

    python benchmarks/export_fullsize.py [--size 512] [--threads N] [--skip-exporters]

1. ``fcn-edge export`` of a full-size FCN-8s (random weights, 21 classes, 512x512,
   aligned, frames -> labels) with verification on, then the same with
   ``--fp16-weights``; each in a fresh process so its peak RSS is its own.
2. torch.onnx's dynamo and TorchScript exporters on the same wrapped model (no
   fcn-edge passes, no verification): time, peak RSS, node count, op types, leftover
   shape arithmetic -- the figures behind the choice in fcn_edge/export/exporter.py.
3. Bytes moved per frame in each I/O mode, read from the I/O declared by exported
   graphs (21 classes at 512x512; I/O sizes do not depend on the model's width, so a
   1/16-width model stands in).

Writes benchmarks/results/export_fullsize.json.  Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DTYPE_BYTES = {"uint8": 1, "int32": 4, "float16": 2, "float32": 4}
SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "Mod", "Concat", "Reshape", "Unsqueeze"}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _make_checkpoint(path: Path, width: float = 1.0) -> None:
    import torch

    from fcn_edge.checkpoint import save_model
    from fcn_edge.artifacts.modelinfo import ModelInfo
    from fcn_edge.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn8s", 21, "aligned", width)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.01)
    save_model(path, model, ModelInfo(arch="fcn8s", num_classes=21, geometry="aligned", width=width))


# ---------------------------------------------------------------------------- children
def child_fcn_edge(ckpt: str, out: str, size: int, fp16: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from fcn_edge.export import ExportConfig, export_onnx

    start = time.perf_counter()
    report = export_onnx(ckpt, out, ExportConfig(size=(size, size), fp16_weights=fp16))
    return {"variant": "fcn-edge export" + (" --fp16-weights" if fp16 else ""), "wall_s": round(time.perf_counter() - start, 2),
            "stages_s": report.seconds, "peak_rss_mb": round(_peak_rss_mb()), "file_mb": round(report.file_bytes / 1e6, 1),
            "nodes": report.node_count, "op_counts": report.op_counts,
            "verification": report.verification.summary() if report.verification else None,
            "lint": [r.summary() for r in report.lint]}


def child_model_only(ckpt: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from fcn_edge.checkpoint import load_checkpoint

    load_checkpoint(ckpt).build_model().eval()
    return {"variant": "load checkpoint + build model only", "peak_rss_mb": round(_peak_rss_mb())}


def child_exporter(ckpt: str, out: str, size: int, dynamo: bool, threads: int) -> dict:
    import contextlib
    import io
    import warnings

    import onnx
    import torch

    torch.set_num_threads(threads)
    from fcn_edge.checkpoint import load_checkpoint
    from fcn_edge.export.graph import DeployableFCN

    ckpt_ = load_checkpoint(ckpt)
    module = DeployableFCN(ckpt_.build_model().eval(), ckpt_.info.preprocessing, 21, outputs=("labels",)).eval()
    example = torch.zeros((1, size, size, 3), dtype=torch.uint8)
    start = time.perf_counter()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=18, input_names=["frames"],
                                        output_names=["labels"], optimize=True)
            program.save(out, external_data=False)
        else:
            torch.onnx.export(module, (example,), out, dynamo=False, opset_version=17, input_names=["frames"],
                              output_names=["labels"], do_constant_folding=True)
    seconds = time.perf_counter() - start
    model = onnx.load(out, load_external_data=False)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"variant": "torch.onnx " + ("dynamo" if dynamo else "TorchScript"), "export_and_save_s": round(seconds, 2),
            "peak_rss_mb": round(_peak_rss_mb()), "nodes": len(model.graph.node), "op_counts": dict(sorted(ops.items())),
            "shape_arithmetic_nodes": sum(v for k, v in ops.items() if k in SHAPE_OPS),
            "file_mb": round(os.path.getsize(out) / 1e6, 1)}


def _run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                    "FCN_EDGE_PROGRESS": "0"})
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- bytes per frame
def bytes_per_frame(tmp: Path, size: int) -> list[dict]:
    from fcn_edge.export import ExportConfig, export_onnx, read_onnx_header

    ckpt = tmp / "narrow21.pt"
    _make_checkpoint(ckpt, width=1 / 16)
    rows = []
    for io_mode, outputs in (("frames", ("labels",)), ("frames", ("labels", "confidence")), ("raw", ("logits",))):
        out = tmp / f"io_{io_mode}_{'_'.join(outputs)}.onnx"
        export_onnx(ckpt, out, ExportConfig(size=(size, size), io=io_mode, outputs=outputs, verify=False), lint_targets=())
        header = read_onnx_header(out)

        def nbytes(t):
            n = DTYPE_BYTES[t.dtype]
            for d in t.shape:
                n *= int(d)
            return n

        ins = {t.name: nbytes(t) for t in header.inputs}
        outs = {t.name: nbytes(t) for t in header.outputs}
        rows.append({"io": io_mode, "outputs": list(outputs),
                     "in": {t.name: f"{t.dtype}{t.shape}" for t in header.inputs}, "in_bytes": sum(ins.values()),
                     "out": {t.name: f"{t.dtype}{t.shape}" for t in header.outputs}, "out_bytes": sum(outs.values()),
                     "total_mb": round((sum(ins.values()) + sum(outs.values())) / 1e6, 3)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-exporters", action="store_true", help="skip the dynamo vs TorchScript comparison")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "fcn-edge":
            result = child_fcn_edge(rest[0], rest[1], args.size, rest[2] == "fp16", args.threads)
        elif kind == "model-only":
            result = child_model_only(rest[0], args.threads)
        else:
            result = child_exporter(rest[0], rest[1], args.size, kind == "dynamo", args.threads)
        print(json.dumps(result))
        return

    from benchmarks._machine import write_result

    with tempfile.TemporaryDirectory(prefix="fcn-edge-export-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ckpt = tmp / "fcn8s_full.pt"
        _make_checkpoint(ckpt)
        print(f"checkpoint {ckpt.stat().st_size / 1e6:.1f} MB", flush=True)
        runs = [_run_child(["model-only", str(ckpt)])]
        print(runs[-1], flush=True)
        for precision in ("fp32", "fp16"):
            runs.append(_run_child(["fcn-edge", str(ckpt), str(tmp / f"full_{precision}.onnx"), precision]))
            print(runs[-1], flush=True)
        exporters = []
        if not args.skip_exporters:
            for kind in ("dynamo", "torchscript"):
                exporters.append(_run_child([kind, str(ckpt), str(tmp / f"raw_{kind}.onnx")]))
                print(exporters[-1], flush=True)
        io_rows = bytes_per_frame(tmp, args.size)
    path = write_result("export_fullsize", {
        "command": "python benchmarks/export_fullsize.py " + " ".join(sys.argv[1:]),
        "note": "shared 2-core machine, other work running: timings are noisy; peak RSS is per process (ru_maxrss)",
        "model": {"arch": "fcn8s", "classes": 21, "size": [args.size, args.size], "geometry": "aligned",
                  "weights": "random", "threads": args.threads},
        "exports": runs, "exporters": exporters, "bytes_per_frame": io_rows})
    print("wrote", path)


if __name__ == "__main__":
    main()
