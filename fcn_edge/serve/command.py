"""fcn-edge serve MODEL: a Triton Inference Server (through PyTriton) serving the model with dynamic batching.

Examples:

    fcn-edge serve export/fcn8s.onnx --max-batch 8 --max-queue-delay-us 2000
    fcn-edge serve export/fcn8s.fp16.engine --instances 2 --model-name fcn8s --address 0.0.0.0

Clients (other machines, robots) then use the model as triton://HOST:8000/NAME
(HTTP) or triton+grpc://HOST:8001/NAME (gRPC) with fcn-edge run/eval/bench and
Segmenter.open, or any Triton client.  Endpoints: /v2/health/live,
/v2/models/NAME/ready (probe this one: the server's own /v2/health/ready turns ready
a moment before the model is loaded), /v2/models/NAME/config (the model's
description is in its `parameters`), /v2/models/NAME/stats, and Prometheus metrics on
--metrics-port.

Needs `pip install 'fcn-edge[serve]'` (nvidia-pytriton, tritonclient; Linux x86_64/aarch64
with glibc 2.35+).  SIGINT (Ctrl-C) or SIGTERM stops the server cleanly: in-flight
requests finish (up to --exit-timeout seconds) and no server process is left behind.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from fcn_edge import cliargs
from fcn_edge.runtime.cuda_memory import CUDA_CHOICES

log = logging.getLogger("fcn_edge.serve")


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="serve a model on Triton Inference Server (PyTriton)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT)")
    g = p.add_argument_group("server")
    g.add_argument("--address", default="0.0.0.0",
                   help="address to listen on (default 0.0.0.0: every interface; 127.0.0.1: this machine only)")
    g.add_argument("--http-port", type=_port, default=8000, help="HTTP/REST port (default 8000)")
    g.add_argument("--grpc-port", type=_port, default=8001, help="gRPC port (default 8001)")
    g.add_argument("--metrics-port", type=_port, default=8002, help="Prometheus metrics port (default 8002)")
    g.add_argument("--model-name", help="name clients use (default: the file name without its suffix)")
    g.add_argument("--max-batch", type=cliargs.positive_int,
                   help="Triton max_batch_size: most frames batched into one call (default: what the model takes; "
                        "8 for an unbounded dynamic batch)")
    g.add_argument("--max-queue-delay-us", type=cliargs.non_negative_int, default=2000,
                   help="how long the dynamic batcher may hold a request to fill a batch, in microseconds "
                        "(default 2000)")
    g.add_argument("--instances", type=cliargs.positive_int, default=1,
                   help="model instances (one runner each) executing batches in parallel (default 1)")
    g.add_argument("--exit-timeout", type=cliargs.non_negative_int, default=5,
                   help="seconds a stop waits for in-flight requests and open connections (default 5)")
    g.add_argument("--log-verbose", type=cliargs.non_negative_int, default=0, help="Triton's own verbose log level")
    g = p.add_argument_group("model")
    g.add_argument("--backend", help="force a backend instead of choosing by suffix")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (GPU index for ONNX Runtime/TensorRT)")
    g.add_argument("--provider", help="ONNX Runtime execution providers, e.g. cuda or tensorrt,cuda (default cpu)")
    g.add_argument("--threads", type=int,
                   help="ONNX Runtime intra-op threads per instance (default: the cores divided by --instances)")
    g.add_argument("--inter-op-threads", type=int, help="ONNX Runtime inter-op threads")
    g.add_argument("--cuda", choices=CUDA_CHOICES, default="auto",
                   help="CUDA for TensorRT engines (default auto: cuda-python, else pycuda, else libcudart through ctypes)")
    g.add_argument("--no-sidecar-check", action="store_true", help="skip the engine sidecar's TensorRT/GPU check")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fcn_edge.runtime import resolve_backend
    from fcn_edge.serve.environment import ServeError
    from fcn_edge.serve.server import ServeConfig, TritonService
    from fcn_edge.stream.command import backend_options

    backend = resolve_backend(args.model, args.backend).name
    options = backend_options(backend, args)
    if backend == "onnxruntime" and args.threads is None:
        options.pop("intra_op_threads", None)  # the service divides the cores between instances
    config = ServeConfig(model=args.model, model_name=args.model_name, address=args.address,
                         http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                         max_batch=args.max_batch, max_queue_delay_us=args.max_queue_delay_us,
                         instances=args.instances, backend=args.backend, backend_options=options,
                         exit_timeout=args.exit_timeout, log_verbose=args.log_verbose)
    service = TritonService(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s received: stopping the server (press Ctrl-C again to abort)", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.start()
        for line in _banner(service):
            print(line, flush=True)
        reason = service.wait(stop)
        if reason != "signal":
            from fcn_edge.serve.environment import diagnose_server_failure

            message = diagnose_server_failure(service._server_log(), service.environment)  # noqa: SLF001
            raise ServeError(f"the Triton server exited on its own: {message}")
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", flush=True)
    sys.stdout.flush()
    return 0


def _banner(service) -> list[str]:
    runner = service.runners[0] if service.runners else None
    io = runner.io if runner else None
    shape = "x".join("?" if d is None else str(d) for d in io.input.shape[1:]) if io else "?"
    outputs = ", ".join(io.output_names) if io else "?"
    plan = service.plan
    return [
        f"serving {service.config.model} as '{service.model_name}' ({runner.backend if runner else '?'}, "
        f"{service.config.instances} instance(s); {io.input.name if io else '?'} {io.input.dtype if io else ''} "
        f"[N,{shape}] -> {outputs}; max batch {plan.max_batch_size if plan else '?'}, queue delay "
        f"{service.config.max_queue_delay_us} us)",
        f"  HTTP     {service.http_url}  (/v2/models/{service.model_name}/ready, /v2/models/{service.model_name}/config)",
        f"  gRPC     {service.grpc_url}",
        f"  metrics  {service.metrics_url}",
        f"  clients  fcn-edge run {service.model_url} --source ...   (gRPC: triton+grpc://{service.grpc_url}/"
        f"{service.model_name})",
        "ready (Ctrl-C or SIGTERM stops)",
    ]
