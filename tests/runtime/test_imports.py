"""The on-device side imports neither torch, tensorrt nor pycuda (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import cli_env

HEAVY = ("torch", "tensorrt", "pycuda", "cuda")
BUILD_HALF = ("models", "data", "train", "eval", "export", "calib", "engine", "demo", "checkpoint")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=cli_env(), capture_output=True,
                          text=True, timeout=120)


def test_importing_runtime_stream_api_and_cli_pulls_in_nothing_heavy():
    """Including the artifact layer the backends read (sidecar, GPU probe, metadata, TensorRT tables)."""
    completed = _run(f"""
        import sys
        import fcn_edge, fcn_edge.runtime, fcn_edge.stream, fcn_edge.stream.command, fcn_edge.api
        from fcn_edge import Segmenter
        import fcn_edge.artifacts
        from fcn_edge.artifacts import modelinfo, onnx_metadata, protowire, sidecar, gpu, trt_versions, trt_tables
        from fcn_edge.runtime import trt_buffers, cuda_memory, fallback, resize, preprocess, synthetic, trt_load
        from fcn_edge.runtime import onnxruntime_backend, tensorrt_backend
        from fcn_edge.runtime import triton_backend
        import fcn_edge.imaging, fcn_edge.info, fcn_edge.doctor, fcn_edge.bench, fcn_edge.bench.core
        import fcn_edge.stream.multi, fcn_edge.serve
        build = sorted({{m for m in sys.modules if m.startswith("fcn_edge.") and m.split(".")[1] in {BUILD_HALF!r}}})
        print("BUILD", build)
        from fcn_edge.cli import build_parser
        build_parser()
        loaded = [m for m in {HEAVY!r} + ("onnxruntime", "onnx", "cv2", "tritonclient", "pytriton") if m in sys.modules]
        print("LOADED", loaded)
    """)
    assert completed.returncode == 0, completed.stderr
    assert "BUILD []" in completed.stdout, completed.stdout
    assert "LOADED []" in completed.stdout, completed.stdout


def test_running_an_onnx_stream_never_imports_torch(tiny_onnx, sample_video):
    completed = _run(f"""
        import sys
        from fcn_edge import Segmenter
        with Segmenter.open({str(tiny_onnx)!r}) as seg:
            n = sum(1 for _ in seg.stream({str(sample_video)!r}, sinks=["none"]))
        print("FRAMES", n)
        print("LOADED", [m for m in {HEAVY!r} if m in sys.modules])
    """)
    assert completed.returncode == 0, completed.stderr
    assert "FRAMES 12" in completed.stdout
    assert "LOADED []" in completed.stdout, completed.stdout
