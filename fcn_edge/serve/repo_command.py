"""fcn-edge triton-repo MODEL... -o REPO: a Triton model repository for NVIDIA's official containers.

Examples:

    fcn-edge triton-repo export/fcn8s.onnx -o models
    fcn-edge triton-repo export/fcn8s.onnx export/fcn8s.fp16.engine -o models --max-batch 8 \\
        --server-trt 10.3.0 --server-gpu-sm 8.6
    fcn-edge triton-repo export/fcn8s.onnx -o models --ort-tensorrt fp16 --instances 2

ONNX models get platform onnxruntime_onnx (--ort-tensorrt adds ONNX Runtime's TensorRT
accelerator), engines platform tensorrt_plan with their sidecar beside them.  Each
config.pbtxt is derived from the model (tensor names, dtypes, dims, max_batch_size,
dynamic batching with preferred sizes, instance groups, version policy), carries the
model's description for triton:// clients, and is checked by parsing it with
Triton's ModelConfig protobuf.  REPO/README.md holds the `docker run` command.
Needs tritonclient (pip install 'fcn-edge[serve]' or 'tritonclient[grpc]').
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fcn_edge import cliargs


def _gpus(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"give GPU indices separated by commas, e.g. 0,1; got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"give GPU indices separated by commas, e.g. 0,1; got {text!r}")
    return values


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("triton-repo", help="write a Triton model repository for the official containers",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help=".onnx models and/or TensorRT engines (.engine/.plan with their .json)")
    p.add_argument("-o", "--output", required=True, help="repository folder (created; existing models need --force)")
    p.add_argument("--name", action="append", help="model name in the repository, once per model "
                                                   "(default: the file name, e.g. fcn8s_fp16)")
    p.add_argument("--max-batch", type=cliargs.positive_int,
                   help="max_batch_size (default: the model's largest batch; only a dynamic batch axis lets Triton batch)")
    p.add_argument("--max-queue-delay-us", type=cliargs.non_negative_int, default=2000,
                   help="dynamic batcher delay in microseconds (default 2000)")
    p.add_argument("--instances", type=cliargs.positive_int, default=1, help="instances per GPU (or CPU) (default 1)")
    p.add_argument("--kind", choices=("gpu", "cpu", "auto"),
                   help="instance kind (default: gpu for engines, auto for ONNX: GPU when the server has one)")
    p.add_argument("--gpus", type=_gpus, help="GPU indices for the instances, e.g. 0,1 (default: all)")
    p.add_argument("--version", type=cliargs.positive_int, default=1, help="version folder to write (default 1)")
    p.add_argument("--keep-versions", type=cliargs.positive_int, default=1,
                   help="version policy: serve the latest N versions (default 1)")
    p.add_argument("--ort-tensorrt", choices=("fp16", "fp32"),
                   help="ONNX models: run through ONNX Runtime's TensorRT execution accelerator at this precision")
    p.add_argument("--server-trt", help="engines: the TensorRT version of the target Triton release (checked)")
    p.add_argument("--server-gpu-sm", help="engines: the target GPU's compute capability, e.g. 8.6 (checked)")
    p.add_argument("--image", help="container image for the README (default nvcr.io/nvidia/tritonserver:<YY.MM>-py3)")
    p.add_argument("--force", action="store_true", help="replace models already in the repository")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fcn_edge.serve.repo import RepoConfig, write_repository

    config = RepoConfig(output=Path(args.output), names=args.name or (), max_batch=args.max_batch,
                        max_queue_delay_us=args.max_queue_delay_us, instances=args.instances, instance_kind=args.kind,
                        gpus=args.gpus or (), version=args.version, keep_versions=args.keep_versions,
                        ort_tensorrt=args.ort_tensorrt, server_trt=args.server_trt, server_gpu_sm=args.server_gpu_sm,
                        image=args.image, force=args.force)
    written = write_repository(args.models, config)
    for model in written:
        batch = model.spec.batch
        batching = f"max_batch_size {batch.max_batch_size}" if batch.max_batch_size else "no batching"
        print(f"{model.folder}: {model.platform}, {batching}, {model.spec.instances} x {model.spec.instance_kind}")
        for requirement in model.requirements:
            print(f"  needs {requirement}")
    print(f"{Path(args.output) / 'README.md'}: how to serve it")
    sys.stdout.flush()
    return 0
