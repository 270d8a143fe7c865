#!/usr/bin/env python3
"""Requests per second and latency of ``fcn-edge serve`` (Triton) with 1, 4 and 8 clients, vs the local runner.

The same model as the other CPU benchmarks (FCN-8s aligned, width 1/4, 21 classes,
128x128, random weights), exported with a dynamic batch 1..8, served by a real Triton
server (``fcn-edge serve``, a child process: ONNX Runtime with --threads, max batch 8,
dynamic batching with --max-queue-delay-us) on 127.0.0.1.  Each client is a thread
with its own ``triton://`` runner (fcn-edge's client: the request includes numpy ->
wire -> numpy) sending one 128x128 frame per request, synchronously, for
``--seconds``.  Reported per configuration: requests/s over all clients, client-side
latency p50/p95 (what a caller waits), the server's mean batch size, and its average
queue and compute time per request (Triton statistics).

The baseline is the local single-stream runner: ``runner.infer`` on one frame at a
time in this process (no network, no server), 1 caller.  Server, clients and baseline
share this machine's CPU cores, so the server's figures include that contention.

Usage::

    python benchmarks/serve_throughput.py [--seconds 8] [--threads 2] [--clients 1,4,8] [--protocols http,grpc]

Writes benchmarks/results/serve_throughput.json (with the machine description).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._machine import write_result  # noqa: E402
from benchmarks._models import export_random_models, fcn8s_info  # noqa: E402


def export_model(folder: Path, width: float, size: tuple[int, int], classes: int):
    info = fcn8s_info(width, size, classes)
    h, w = size
    path = folder / "served.onnx"
    export_random_models(info, [(path, {"size": size, "outputs": ["labels"], "dynamic": ["batch"], "batch": 4,
                                        "min_shape": [1, h, w], "max_shape": [8, h, w]})])
    return path, info


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "mean": round(float(np.mean(values)), 3)}


def local_baseline(model: Path, threads: int, seconds: float, size: tuple[int, int]) -> dict:
    from fcn_edge.runtime import open_runner

    frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    with open_runner(model, intra_op_threads=threads, allow_spinning=False) as runner:
        runner.warmup(size, iterations=5)
        latencies = []
        end = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            runner.infer(frame)
            latencies.append((time.perf_counter() - t0) * 1000.0)
        elapsed = time.perf_counter() - start
    return {"clients": 1, "requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 2),
            "latency_ms": percentiles(latencies)}


def client_run(url: str, clients: int, seconds: float, size: tuple[int, int]) -> dict:
    from fcn_edge.runtime import open_runner

    runners = [open_runner(url, max_in_flight=1) for _ in range(clients)]
    before = runners[0].server_statistics()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        frame = np.random.default_rng(i).integers(0, 256, (1, *size, 3), dtype=np.uint8)
        try:
            runners[i].infer(frame)  # connection set up, first request out of the way
            barrier.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                runners[i].infer(frame)
                latencies[i].append((time.perf_counter() - t0) * 1000.0)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    before = runners[0].server_statistics()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = runners[0].server_statistics()
    for runner in runners:
        runner.close()
    if errors:
        raise errors[0]
    window = after.minus(before)
    done = [v for per in latencies for v in per]
    return {"clients": clients, "requests": len(done), "requests_per_s": round(len(done) / elapsed, 2),
            "latency_ms": percentiles(done), "server": window.to_dict()}


def start_server(model: Path, threads: int, ports: list[int], delay_us: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "fcn_edge", "serve", str(model), "--address", "127.0.0.1",
                                "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port",
                                str(ports[2]), "--model-name", "bench", "--max-batch", "8", "--max-queue-delay-us",
                                str(delay_us), "--threads", str(threads)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"fcn-edge serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/models/bench/ready", timeout=2) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit("the server did not become ready")


RESULTS_TITLE = "Triton server (`fcn-edge serve`) vs the local runner (`benchmarks/serve_throughput.py`)"


def results_markdown(data: dict) -> list[str]:
    """The RESULTS.md block (benchmarks/update_results.py)."""
    model = data.get("model") or {}
    server = data.get("server") or {}
    lines = [f"FCN-8s width {model.get('width')}, {model.get('classes')} classes, "
             f"{'x'.join(map(str, model.get('input_hw') or []))}, batch {model.get('batch')}; server: "
             f"`{server.get('command')}` on 127.0.0.1; clients: {(data.get('request') or {}).get('client')}, one "
             "frame per request. Server figures from Triton's statistics.", "",
             "| caller | clients | requests/s | latency p50 / p95 ms | server mean batch | "
             "server queue / compute ms per request |", "| --- | --- | --- | --- | --- | --- |"]
    base = data.get("baseline_local_runner") or {}
    if base:
        lat = base.get("latency_ms") or {}
        lines.append(f"| local runner (`runner.infer`, no server) | 1 | {base.get('requests_per_s')} | "
                     f"{lat.get('p50', 0):.1f} / {lat.get('p95', 0):.1f} | - | - |")
    for row in data.get("triton") or []:
        lat, s = row.get("latency_ms") or {}, row.get("server") or {}
        lines.append(f"| Triton {row.get('protocol', '').upper().replace('GRPC', 'gRPC')} | {row.get('clients')} | "
                     f"{row.get('requests_per_s')} | {lat.get('p50', 0):.1f} / {lat.get('p95', 0):.1f} | "
                     f"{s.get('mean_batch')} | {s.get('server_queue_ms', 0):.1f} / {s.get('server_compute_ms', 0):.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per configuration (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (server and baseline)")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--name", default="serve_throughput")
    args = parser.parse_args(argv)

    from fcn_edge.artifacts.modelinfo import parse_size
    from fcn_edge.serve.environment import free_port

    size = parse_size(args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-") as tmp:
        model, info = export_model(Path(tmp), args.width, size, 21)
        baseline = local_baseline(model, args.threads, args.seconds, size)
        print(f"local runner, 1 caller: {baseline['requests_per_s']} req/s, p50 {baseline['latency_ms']['p50']} ms "
              f"p95 {baseline['latency_ms']['p95']} ms", flush=True)
        ports = []
        while len(set(ports)) < 3:
            ports = [free_port() for _ in range(3)]
        server = start_server(model, args.threads, ports, args.max_queue_delay_us)
        try:
            for protocol in args.protocols.split(","):
                url = (f"triton://127.0.0.1:{ports[0]}/bench" if protocol == "http"
                       else f"triton+grpc://127.0.0.1:{ports[1]}/bench")
                for clients in (int(c) for c in args.clients.split(",")):
                    row = {"protocol": protocol, **client_run(url, clients, args.seconds, size)}
                    rows.append(row)
                    s = row["server"]
                    print(f"triton {protocol:4s} {clients} client(s): {row['requests_per_s']} req/s, p50 "
                          f"{row['latency_ms']['p50']} ms p95 {row['latency_ms']['p95']} ms; server mean batch "
                          f"{s['mean_batch']}, queue {s.get('server_queue_ms')} ms, compute "
                          f"{s.get('server_compute_ms')} ms per request", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    payload = {
        "command": "python benchmarks/serve_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "shared 2-core machine (other sessions may run beside it; the load average at the end is in the machine "
                "block); server, clients and baseline share the same 2 cores",
        "model": {"arch": info.arch, "width": info.width, "classes": info.num_classes, "input_hw": list(size),
                  "io": "frames", "outputs": ["labels"], "batch": "dynamic 1..8",
                  "weights": "random (speed does not depend on them)"},
        "server": {"command": "fcn-edge serve MODEL --max-batch 8 --max-queue-delay-us "
                              f"{args.max_queue_delay_us} --threads {args.threads}", "instances": 1,
                   "backend": "onnxruntime (CPU)"},
        "request": {"frames_per_request": 1, "frame_hw": list(size), "client": "fcn-edge triton:// runner, "
                    "one synchronous request at a time per client thread"},
        "baseline_local_runner": baseline,
        "triton": rows,
    }
    path = write_result(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
