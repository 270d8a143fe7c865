"""``fcn-edge bench``: latency percentiles, FPS, memory and I/O bytes per frame of one or more models."""

from __future__ import annotations

import argparse
import sys

from fcn_edge.runtime.cuda_memory import CUDA_CHOICES

EPILOG = """examples:
  fcn-edge bench export/fcn8s.onnx                                  # 5 s at the model's batch and size
  fcn-edge bench export/fcn8s.onnx --iterations 200 --batch 1,8 --threads 4 --json bench.json
  fcn-edge bench export/fcn8s.fp16.engine --batch 1,8 --in-flight 2 # + pipelined throughput (TensorRT)
  fcn-edge bench runs/best.pt export/fcn8s.onnx export/fcn8s.fp16.engine --device cuda --compare --check-agreement
  fcn-edge bench best.pt::device=cuda best.pt::device=cuda,precision=fp16 --compare --check-agreement
  fcn-edge bench triton://gpu-box:8000/fcn8s --seconds 10

per-model backend options: MODEL::key=value[,key=value...] (e.g. model.onnx::providers=cuda,threads=4).
Shared options (--device, --precision, --threads, --providers, --cuda, --option) go to every model whose
backend takes them and are reported as ignored for the others.

What each number includes is printed under the table and stored in the JSON ("definitions").
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="latency (p50/p95/p99), FPS, memory and I/O bytes of models on any backend",
        description="Benchmark one or more models (.pt, .onnx, .engine, triton://...) on deterministic synthetic "
                    "frames: warm-up, then a fixed number of batches or a duration, per batch size; prints a "
                    "markdown table and says what each number includes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="model file or URL, optionally MODEL::key=value,...")
    run = p.add_argument_group("what to run")
    amount = run.add_mutually_exclusive_group()
    amount.add_argument("--iterations", "-n", type=int, metavar="N", help="timed batches per row")
    amount.add_argument("--seconds", type=float, metavar="S", help="timed duration per row (default 5 s, at least 3 batches)")
    run.add_argument("--warmup", type=int, default=2, metavar="N", help="warm-up batches before each row (default 2)")
    run.add_argument("--warmup-seconds", type=float, metavar="S", help="warm up for S seconds instead")
    run.add_argument("--batch", metavar="LIST", help="batch sizes, e.g. 1,8 (default: the model's static batch, else 1)")
    run.add_argument("--size", metavar="HxW", help="input size for models that accept any size (default: their export size)")
    run.add_argument("--in-flight", type=int, default=1, metavar="K",
                     help="also run pipelined with K batches in flight (submit/result) where the backend overlaps work")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames (default 0)")
    run.add_argument("--images", metavar="SOURCE",
                     help="real frames instead of synthetic ones (a folder, glob, video or image, as run --source "
                          "reads): timed batches come from them and --check-agreement is measured on them")
    run.add_argument("--max-images", type=int, default=100, metavar="N",
                     help="frames read from --images for agreement (default 100)")
    opts = p.add_argument_group("backend options (shared)")
    opts.add_argument("--device", help="PyTorch device: cpu, cuda, cuda:1")
    opts.add_argument("--precision", choices=("fp32", "fp16"), help="PyTorch precision (fp16 = autocast on CUDA)")
    opts.add_argument("--threads", type=int, metavar="N", help="CPU threads (PyTorch, ONNX Runtime intra-op)")
    opts.add_argument("--providers", metavar="LIST", help="ONNX Runtime providers, e.g. cuda or tensorrt,cuda")
    opts.add_argument("--cuda", choices=CUDA_CHOICES,
                      help="TensorRT engines: CUDA through cuda-python, pycuda or libcudart (ctypes); default auto")
    opts.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="any other backend option (repeatable), e.g. --option cuda=pycuda")
    out = p.add_argument_group("output")
    out.add_argument("--compare", action="store_true", help="one table for all models with ratios to the first")
    out.add_argument("--check-agreement", action="store_true",
                     help="pixel agreement of each model's labels with the first model's (fp16/int8 vs fp32)")
    out.add_argument("--json", metavar="FILE", help="also write everything as JSON (atomic)")
    out.add_argument("--keep-going", action="store_true",
                     help="record a model that cannot be opened as not run and go on with the others")
    p.set_defaults(func=main)


def build_config(args):
    from fcn_edge.bench.config import BenchConfig, parse_batches, parse_options, parse_size

    options = {}
    for item in args.option:
        options.update(parse_options(item, "--option"))
    for name in ("device", "precision", "threads", "providers", "cuda"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    return BenchConfig(
        iterations=args.iterations, seconds=args.seconds, warmup=args.warmup, warmup_seconds=args.warmup_seconds,
        batches=parse_batches(args.batch) if args.batch else None, size=parse_size(args.size) if args.size else None,
        in_flight=args.in_flight, seed=args.seed, check_agreement=args.check_agreement,
        images=args.images, max_images=args.max_images, compare=args.compare,
        options=options, keep_going=args.keep_going)


def main(args) -> int:
    from fcn_edge.bench.config import parse_model_argument
    from fcn_edge.bench.core import run_bench
    from fcn_edge.fileio import check_writable_destination

    config = build_config(args)
    specs = [parse_model_argument(m) for m in args.models]
    if args.json:
        check_writable_destination(args.json)  # fail now, not after minutes of measuring
    report = run_bench(specs, config, emit=lambda line: print(line, file=sys.stderr))
    report.command = ["fcn-edge", "bench", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else None
    print(report.markdown(), end="")
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
