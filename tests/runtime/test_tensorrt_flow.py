"""The TensorRT runner's orchestration, driven through test doubles of TensorRT and CUDA.

Nothing here is TensorRT: ``FakeTensorRT`` implements the handful of name-based API calls
the runner makes (deserialize, num_io_tensors, get_tensor_*, set_input_shape,
set_tensor_address, execute_async_v3) over numpy "device memory", and ``FakeCuda``
copies immediately.  It checks the runner's own logic (profiles, buffer sets, host views,
int64 ArgMax normalisation, sidecar use, cleanup); the real thing is covered by the
``tensorrt``-marked tests in test_tensorrt_backend.py on a GPU machine.  Sidecars are
written by the engine stage's real writer (``write_engine_and_sidecar``) and checked by
its real loader (``prepare_engine_load``); only the GPU probe is replaced, by
``FAKE_GPU``, so these tests give the same answers on a machine with a real GPU.
"""

from __future__ import annotations

import enum
import itertools
import time
import types

import numpy as np
import pytest

from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.artifacts.sidecar import make_sidecar, write_engine_and_sidecar
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.runtime import tensorrt_backend
from fcn_edge.runtime.cuda_memory import CudaMemory, DeviceBuffer, Event, Stream


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3
    UINT8 = 5
    INT64 = 7


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class FakeCuda(CudaMemory):
    name = "fake-cuda"

    def __init__(self):
        self.memory: dict[int, np.ndarray] = {}
        self.addresses = itertools.count(4096, 4096)
        self.freed = 0

    def make_current(self):
        pass

    def malloc(self, nbytes):
        ptr = next(self.addresses)
        self.memory[ptr] = np.zeros(nbytes, np.uint8)

        def free():
            self.freed += 1
            del self.memory[ptr]

        return DeviceBuffer(ptr, nbytes, free)

    def pinned_empty(self, shape, dtype=np.uint8):
        return np.zeros(shape, dtype)

    def copy_htod_async(self, dst, src, stream):
        self.memory[int(dst)][: src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_dtoh_async(self, dst, src, stream):
        dst.reshape(-1).view(np.uint8)[:] = self.memory[int(src)][: dst.nbytes]

    def stream(self):
        return FakeStream()

    def event(self):
        return FakeEvent()

    def device_name(self):
        return "Fake GPU"

    def compute_capability(self):
        return (8, 7)


class FakeStream(Stream):
    handle = 1234

    def synchronize(self):
        pass

    def wait_event(self, event):
        pass

    def close(self):
        pass


class FakeEvent(Event):
    def __init__(self):
        self.t = None

    def record(self, stream):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def query(self):
        return True

    def elapsed_ms(self, start):
        return (self.t - start.t) * 1000.0

    def close(self):
        pass


class FakeEngine:
    """frames uint8 [-1,8,8,3] (profile 1..4) -> labels int64 [-1,8,8] = frame[...,0] % 5."""

    def __init__(self, cuda: FakeCuda):
        self.cuda = cuda
        self.tensors = {"frames": (TensorIOMode.INPUT, DataType.UINT8, (-1, 8, 8, 3)),
                        "labels": (TensorIOMode.OUTPUT, DataType.INT64, (-1, 8, 8))}
        self.num_io_tensors = 2

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_dtype(self, name):
        return self.tensors[name][1]

    def get_tensor_shape(self, name):
        return self.tensors[name][2]

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 8, 8, 3), (2, 8, 8, 3), (4, 8, 8, 3)]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine):
        self.engine = engine
        self.shape = None
        self.addresses = {}
        self.executions = 0

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
        if not all(a <= d <= b for d, a, b in zip(shape, lo, hi)):
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shape if name == "frames" else self.shape[:3]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        assert stream_handle == 1234
        memory = self.engine.cuda.memory
        n = int(np.prod(self.shape))
        frames = memory[self.addresses["frames"]][:n].reshape(self.shape)
        labels = (frames[..., 0] % 5).astype(np.int64)
        memory[self.addresses["labels"]][: labels.nbytes] = labels.reshape(-1).view(np.uint8)
        self.executions += 1
        return True


def fake_tensorrt(cuda: FakeCuda, version: str = "10.3.0", fail: bool = False):
    module = types.SimpleNamespace(__version__=version, TensorIOMode=TensorIOMode)

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Runtime:
        def __init__(self, logger):
            self.settings = module.runtime_settings = {}

        def __setattr__(self, name, value):
            if name != "settings":
                self.settings[name] = value
            object.__setattr__(self, name, value)

        def load_runtime(self, path):
            lean = Runtime(None)
            module.runtime_settings = lean.settings
            lean.settings["loaded_from"] = path
            return lean

        def deserialize_cuda_engine(self, data):
            return None if fail else FakeEngine(cuda)

    module.Logger, module.Runtime = Logger, Runtime
    return module


FAKE_GPU = GpuInfo("Fake GPU", (8, 7), integrated=True)


def write_sidecar(engine, *, trt="10.3.0", gpu=FAKE_GPU, info=None, vc=False, lean=False, dla=None, export=None):
    """The engine stage's own sidecar for ``engine`` (its bytes stay as they are)."""
    data = engine.read_bytes()
    sidecar = make_sidecar(
        engine_bytes=data, engine_name=engine.name, trt_version=trt, gpu=gpu, precision="fp16",
        io={"inputs": [{"name": "frames", "shape": [-1, 8, 8, 3], "dtype": "uint8",
                        "profile": {"min": [1, 8, 8, 3], "opt": [2, 8, 8, 3], "max": [4, 8, 8, 3]}}],
            "outputs": [{"name": "labels", "shape": [-1, 8, 8], "dtype": "int64"}]},
        source_name="tiny.onnx", source_sha256="0" * 64, source_opset=17, build={}, version_compatible=vc,
        exclude_lean_runtime=lean, hardware_compat="none", dla_core=dla, gpu_fallback=dla is not None,
        model=info.to_dict() if info else None, export=export)
    write_engine_and_sidecar(engine, data, sidecar)


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    cuda = FakeCuda()
    state = {"trt": fake_tensorrt(cuda)}
    monkeypatch.setattr(tensorrt_backend, "require", lambda name, purpose=None: state["trt"])
    monkeypatch.setattr(tensorrt_backend, "open_cuda", lambda binding, device_id: cuda)
    monkeypatch.setattr(tensorrt_backend, "probe_gpu", lambda index=0: FAKE_GPU)
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"serialized engine")
    return cuda, state, engine


def frames(n):
    return np.random.default_rng(n).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_double_buffered_submissions_return_uint8_labels_in_order(fakes, tiny_info):
    cuda, _, engine = fakes
    with tensorrt_backend.TensorRTRunner(engine, info=tiny_info) as runner:
        assert runner.io.kind == "frames" and runner.io.batch is None and runner.io.max_batch == 4
        assert runner.plan.sizes == {"frames": 4 * 8 * 8 * 3, "labels": 4 * 8 * 8 * 8}
        a, b = frames(3), frames(1)
        first = runner.submit(a)
        second = runner.submit(b)
        assert runner.ring.in_flight == [0, 1]
        with pytest.raises(RuntimeError, match="in flight"):
            runner.submit(a)
        ra, rb = first.result(), second.result()
        np.testing.assert_array_equal(ra.labels, a[..., 0] % 5)
        np.testing.assert_array_equal(rb.labels, b[..., 0] % 5)
        assert ra.labels.dtype == np.uint8 and ra.labels.shape == (3, 8, 8)
        assert {"h2d", "compute", "d2h", "infer"} <= set(ra.timings)
        assert runner.ring.free == 2
        # results are copies: the next batch into the same buffer set does not change them
        runner.infer(frames(4))
        np.testing.assert_array_equal(ra.labels, a[..., 0] % 5)
        with pytest.raises(FcnEdgeError, match="optimisation profile|at most 4"):
            runner.infer(frames(5))
        assert runner.ring.free == 2
        assert runner.describe()["buffer_sets"] == 2
    assert cuda.memory == {} and cuda.freed == 4  # two sets x two tensors released


def test_model_description_from_the_sidecar(fakes, tiny_info):
    _, state, engine = fakes
    write_sidecar(engine, info=tiny_info)
    with tensorrt_backend.TensorRTRunner(engine) as runner:
        assert runner.info.class_names == tiny_info.class_names
        assert "TensorRT 10.3.0 on Fake GPU" in runner.describe()["engine"]
    assert state["trt"].runtime_settings == {}  # a plain engine: nothing to allow


def test_sidecar_mismatch_and_undeserialisable_engines(fakes):
    cuda, state, engine = fakes
    write_sidecar(engine, trt="8.6.2", gpu=GpuInfo("Orin", (8, 7), integrated=True))
    with pytest.raises(ArtifactError, match="built with TensorRT 8.6.2 but this is TensorRT 10.3.0"):
        tensorrt_backend.TensorRTRunner(engine)
    (engine.parent / "tiny.engine.json").unlink()
    state["trt"] = fake_tensorrt(cuda, fail=True)
    with pytest.raises(ArtifactError, match="cannot load the engine"):
        tensorrt_backend.TensorRTRunner(engine)


def test_a_copy_without_its_sidecar_runs_unchecked_and_says_so(fakes, caplog):
    _, _, engine = fakes
    with caplog.at_level("WARNING"):
        with tensorrt_backend.TensorRTRunner(engine) as runner:
            assert runner.info.num_classes == 21 and runner.sidecar is None
            runner.infer(frames(1))
    assert "has no sidecar tiny.engine.json" in caplog.text
    assert "no fcn-edge model description" in caplog.text


def test_turning_the_check_off_still_reads_the_description(fakes, tiny_info, caplog):
    _, _, engine = fakes
    write_sidecar(engine, trt="8.6.2", info=tiny_info)
    with caplog.at_level("WARNING"):
        with tensorrt_backend.TensorRTRunner(engine, check_sidecar=False) as runner:
            assert runner.info.class_names == tiny_info.class_names
    assert "not checking tiny.engine" in caplog.text


def test_load_settings_reach_the_tensorrt_runtime(fakes, tiny_info, tmp_path):
    _, state, engine = fakes
    write_sidecar(engine, vc=True, info=tiny_info)
    tensorrt_backend.TensorRTRunner(engine).close()
    assert state["trt"].runtime_settings == {"engine_host_code_allowed": True}
    write_sidecar(engine, dla=1, info=tiny_info)
    tensorrt_backend.TensorRTRunner(engine).close()
    assert state["trt"].runtime_settings == {"DLA_core": 1}
    write_sidecar(engine, vc=True, lean=True, info=tiny_info)
    tensorrt_backend.TensorRTRunner(engine, lean_runtime="/opt/trt/libnvinfer_lean.so.10").close()
    assert state["trt"].runtime_settings == {"loaded_from": "/opt/trt/libnvinfer_lean.so.10"}


def test_lean_excluded_engine_that_fails_names_the_option(fakes, tiny_info):
    cuda, state, engine = fakes
    write_sidecar(engine, vc=True, lean=True, info=tiny_info)
    state["trt"] = fake_tensorrt(cuda, fail=True)
    with pytest.raises(ArtifactError, match="lean_runtime=PATH"):
        tensorrt_backend.TensorRTRunner(engine)


def test_uint8_confidence_is_scaled_to_probabilities(tiny_info):
    from fcn_edge.runtime.base import build_result
    from fcn_edge.runtime.trt_buffers import EngineTensor, engine_io_spec

    io = engine_io_spec([EngineTensor("frames", True, np.dtype(np.uint8), (1, 2, 2, 3)),
                         EngineTensor("labels", False, np.dtype(np.uint8), (1, 2, 2)),
                         EngineTensor("confidence", False, np.dtype(np.uint8), (1, 2, 2))])
    stored = np.array([[[255, 0], [128, 51]]], np.uint8)
    labels = np.zeros((1, 2, 2), np.uint8)
    exported = build_result({"labels": labels, "confidence": stored}, io, tiny_info, confidence_scale=1 / 255)
    np.testing.assert_allclose(exported.confidence, stored / 255.0, rtol=1e-6)
    assert exported.confidence.dtype == np.float32
    unspecified = build_result({"labels": labels, "confidence": stored}, io, tiny_info)
    np.testing.assert_array_equal(unspecified.confidence, exported.confidence)
    half = build_result({"labels": labels, "confidence": (stored / 255.0).astype(np.float16)}, io, tiny_info,
                        confidence_scale=1.0)
    np.testing.assert_allclose(half.confidence, stored / 255.0, atol=1e-3)
