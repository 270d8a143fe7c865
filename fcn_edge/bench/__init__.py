"""fcn-edge bench: latency, throughput, memory and I/O bytes of any model a backend opens.

Python API::

    from fcn_edge.bench import BenchConfig, ModelSpec, run_bench
    report = run_bench(["export/fcn8s.onnx", ModelSpec("runs/best.pt", {"device": "cuda", "precision": "fp16"})],
                       BenchConfig(iterations=100, batches=(1, 8), compare=True, check_agreement=True))
    print(report.markdown())          # the table(s) and what each number includes
    report.write_json("bench.json")   # schema in fcn_edge.bench.report

Models go through :func:`fcn_edge.runtime.open_runner`, so ``.pt``, ``.onnx``,
``.engine`` and any registered backend (``triton://``) are measured the same way.
Importing this package imports no backend library.
"""

from fcn_edge.bench.config import (BenchConfig, BenchConfigError, ModelSpec, parse_batches, parse_model_argument,
                                   parse_options, parse_size)
from fcn_edge.bench.core import BenchRow, ModelResult, batch_problem, bench_runner, run_bench
from fcn_edge.bench.io_bytes import io_bytes_per_frame, tensor_bytes_per_frame
from fcn_edge.bench.report import DEFINITIONS, SCHEMA, BenchReport
from fcn_edge.bench.stats import percentile, ratio, summarize

__all__ = [
    "BenchConfig", "BenchConfigError", "ModelSpec", "run_bench", "bench_runner", "BenchReport", "BenchRow",
    "ModelResult", "batch_problem", "io_bytes_per_frame", "tensor_bytes_per_frame", "percentile", "summarize",
    "ratio", "parse_batches", "parse_model_argument", "parse_options", "parse_size", "DEFINITIONS", "SCHEMA",
]
