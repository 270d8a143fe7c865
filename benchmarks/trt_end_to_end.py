"""TensorRT end to end: build fp32/fp16/int8 engines, run them, compare with ONNX Runtime, time them.

Run on a machine with an NVIDIA GPU, TensorRT's Python bindings and either PyTorch with
CUDA or cuda-python (for device memory)::

    python benchmarks/trt_end_to_end.py                       # tiny FCN-8s, 128x128, made here
    python benchmarks/trt_end_to_end.py --onnx export/fcn8s.onnx --int8-onnx export/fcn8s.int8.onnx \
        --runs 200 --workdir /tmp/fcn-trt

For each precision it calls ``fcn-edge build-engine``'s Python entry point (the real
TensorRT path), loads the engine through the sidecar check the runtime uses
(:func:`fcn_edge.artifacts.sidecar.prepare_engine_load`), runs it on the same frames as
ONNX Runtime (CPU) and reports label agreement with the FP32 ONNX model and latency
percentiles (execute + synchronise, batch 1).  INT8 uses ``--int8-onnx`` if given,
else a Q/DQ model made here with ONNX Runtime's static quantizer on random frames
(only a functional check of the INT8 road: accuracy needs real calibration images).
Results go to ``benchmarks/results/trt_end_to_end.json``.

Nothing here has been run yet: this workplace has no GPU with TensorRT.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



class DeviceMemory:
    """Device buffers and a stream through torch (CUDA build) or cuda-python, whichever is present."""

    def __init__(self) -> None:
        self.backend = None
        try:
            import torch

            if torch.cuda.is_available():
                self.torch = torch
                self.backend = "torch"
                self.stream = torch.cuda.Stream()
                return
        except ImportError:
            pass
        try:
            try:
                from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
            except ImportError:
                from cuda import cudart  # older cuda-python
            self.cudart = cudart
            self.backend = "cuda-python"
            err, self.stream = cudart.cudaStreamCreate()
            self._check(err)
        except ImportError as exc:
            raise SystemExit("needs PyTorch with CUDA or cuda-python for device memory (pip install cuda-python)") from exc

    def _check(self, err: Any) -> None:
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")

    @property
    def stream_handle(self) -> int:
        return self.stream.cuda_stream if self.backend == "torch" else int(self.stream)

    def to_device(self, array: np.ndarray) -> Any:
        if self.backend == "torch":
            return self.torch.from_numpy(np.ascontiguousarray(array)).cuda()
        err, ptr = self.cudart.cudaMalloc(array.nbytes)
        self._check(err)
        self._check(self.cudart.cudaMemcpy(ptr, np.ascontiguousarray(array).ctypes.data, array.nbytes,
                                           self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)[0])
        return (ptr, array.shape, array.dtype)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        if self.backend == "torch":
            return self.torch.empty(shape, dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        err, ptr = self.cudart.cudaMalloc(max(nbytes, 1))
        self._check(err)
        return (ptr, shape, np.dtype(dtype))

    def address(self, buffer: Any) -> int:
        return int(buffer.data_ptr()) if self.backend == "torch" else int(buffer[0])

    def to_host(self, buffer: Any) -> np.ndarray:
        if self.backend == "torch":
            return buffer.cpu().numpy()
        ptr, shape, dtype = buffer
        out = np.empty(shape, dtype)
        self._check(self.cudart.cudaMemcpy(out.ctypes.data, ptr, out.nbytes,
                                           self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)[0])
        return out

    def synchronize(self) -> None:
        if self.backend == "torch":
            self.stream.synchronize()
        else:
            self._check(self.cudart.cudaStreamSynchronize(self.stream)[0])


class EngineRunner:
    """Minimal name-based TensorRT execution (8.5-11): set shapes, bind addresses, execute_async_v3."""

    def __init__(self, engine_path: Path, memory: DeviceMemory) -> None:
        import tensorrt as trt

        from fcn_edge.artifacts.gpu import probe_gpu
        from fcn_edge.artifacts.sidecar import prepare_engine_load
        from fcn_edge.runtime.trt_load import prepare_runtime

        self.trt, self.memory = trt, memory
        sidecar, data, settings, warnings = prepare_engine_load(engine_path, trt.__version__, probe_gpu())
        for warning in warnings:
            print(f"warning: {warning}")
        self.sidecar = sidecar
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = prepare_runtime(trt.Runtime(logger), settings)  # as build-engine and the runtime do
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path}")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]
        self._bound_shape: tuple | None = None

    def _bind(self, feeds: dict[str, np.ndarray]) -> None:
        from fcn_edge.runtime.trt_buffers import numpy_dtype

        self.device_inputs = {name: self.memory.to_device(array) for name, array in feeds.items()}
        for name, array in feeds.items():
            self.context.set_input_shape(name, tuple(array.shape))
            self.context.set_tensor_address(name, self.memory.address(self.device_inputs[name]))
        self.device_outputs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            np_dtype = numpy_dtype(self.engine.get_tensor_dtype(name))  # the engine stage's one TensorRT dtype table
            self.device_outputs[name] = self.memory.empty(shape, np_dtype)
            self.context.set_tensor_address(name, self.memory.address(self.device_outputs[name]))

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise RuntimeError("execute_async_v3 failed")
        self.memory.synchronize()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._bind(feeds)
        self.execute()
        return {name: self.memory.to_host(buffer) for name, buffer in self.device_outputs.items()}


def make_tiny_onnx(workdir: Path, size: tuple[int, int]) -> Path:
    """A tiny random FCN-8s (aligned, 5 classes) with frames in / labels + logits out."""
    from tests.engine.onnx_models import export_tiny_fcn

    return export_tiny_fcn(workdir / "tiny_fcn8s.onnx", "fcn8s", "aligned", size=size)


def make_qdq_onnx(fp32_onnx: Path, frames: np.ndarray, target: Path) -> Path:
    """Q/DQ INT8 via ONNX Runtime's static quantizer (symmetric, per-channel Conv weights)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"frames": f[None]} for f in frames])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32_onnx), str(target), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, help="FP32 ONNX with frames in, labels out (default: a tiny one made here)")
    parser.add_argument("--int8-onnx", type=Path, help="Q/DQ ONNX for the INT8 engine (default: quantized here)")
    parser.add_argument("--size", default="128x128", help="frame size HxW for the tiny model")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--frames", type=int, default=8, help="frames compared with ONNX Runtime")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions
    from fcn_edge.metrics import pixel_agreement

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fcn-trt-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    h, w = (int(v) for v in args.size.lower().split("x"))
    onnx_path = args.onnx or make_tiny_onnx(workdir, (h, w))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, *shape[1:]), dtype=np.uint8)
    reference = [session.run(["labels"], {"frames": f[None]})[0] for f in frames]

    memory = DeviceMemory()
    results: dict[str, Any] = {"onnx": str(onnx_path), "frame_shape": shape, "device_memory": memory.backend,
                               "runs": args.runs, "engines": {}}
    for precision in args.precisions.split(","):
        source = onnx_path
        if precision == "int8":
            source = args.int8_onnx or make_qdq_onnx(onnx_path, frames, workdir / f"{onnx_path.stem}.int8.onnx")
        engine_path = workdir / f"{onnx_path.stem}.{precision}.engine"
        started = time.perf_counter()
        run_build(BuildRequest(onnx=source, options=BuildOptions(precision=precision,
                                                                timing_cache=str(workdir / "timing.cache")),
                               output=engine_path))
        build_s = time.perf_counter() - started
        runner = EngineRunner(engine_path, memory)
        agreement = []
        for frame, ref in zip(frames, reference):
            out = runner.run({"frames": frame[None]})
            agreement.append(float(pixel_agreement(out["labels"].astype(np.int64), ref.astype(np.int64))))
        runner._bind({"frames": frames[0][None]})
        for _ in range(10):
            runner.execute()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            runner.execute()
            times.append((time.perf_counter() - t0) * 1000)
        results["engines"][precision] = {
            "engine": str(engine_path), "engine_mb": round(engine_path.stat().st_size / 1e6, 2),
            "build_seconds": round(build_s, 1), "label_agreement_vs_onnxruntime_fp32": round(min(agreement), 5),
            "mean_agreement": round(float(np.mean(agreement)), 5),
            "latency_ms": {"p50": round(float(np.percentile(times, 50)), 3), "p90": round(float(np.percentile(times, 90)), 3),
                           "p99": round(float(np.percentile(times, 99)), 3)},
            "sidecar": runner.sidecar.describe(),
        }
        print(precision, results["engines"][precision])
    if not args.no_write:
        from benchmarks._machine import write_result

        print(f"wrote {write_result('trt_end_to_end', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
