"""The TensorRT runner's orchestration, driven through test doubles of TensorRT and CUDA.

Nothing here is TensorRT: ``FakeTensorRT`` implements the handful of name-based API calls
the runner makes (deserialize, num_io_tensors, get_tensor_*, set_input_shape,
set_tensor_address, execute_async_v3) over numpy "device memory", and ``FakeCuda``
copies immediately.  It checks the runner's own logic (profiles, buffer sets, host views,
int64 ArgMax normalisation, sidecar use, cleanup); the real thing is covered by the
``tensorrt``-marked tests in test_tensorrt_backend.py on a GPU machine.
"""

from __future__ import annotations

import enum
import itertools
import json
import time
import types

import numpy as np
import pytest

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
            pass

        def deserialize_cuda_engine(self, data):
            return None if fail else FakeEngine(cuda)

    module.Logger, module.Runtime = Logger, Runtime
    return module


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    cuda = FakeCuda()
    state = {"trt": fake_tensorrt(cuda)}
    monkeypatch.setattr(tensorrt_backend, "require", lambda name, purpose=None: state["trt"])
    monkeypatch.setattr(tensorrt_backend, "open_cuda", lambda binding, device_id: cuda)
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
    _, _, engine = fakes
    (engine.parent / "tiny.engine.json").write_text(json.dumps({
        "tensorrt_version": "10.3.0", "gpu": {"name": "Fake GPU", "compute_capability": "8.7"},
        "model": tiny_info.to_dict()}))
    with tensorrt_backend.TensorRTRunner(engine) as runner:
        assert runner.info.class_names == tiny_info.class_names


def test_sidecar_mismatch_and_undeserialisable_engines(fakes):
    cuda, state, engine = fakes
    sidecar = engine.parent / "tiny.engine.json"
    sidecar.write_text(json.dumps({"tensorrt_version": "8.6.2", "gpu": {"name": "Orin", "compute_capability": "8.7"}}))
    with pytest.raises(ArtifactError, match="built with TensorRT 8.6.2 and Orin"):
        tensorrt_backend.TensorRTRunner(engine)
    sidecar.unlink()
    state["trt"] = fake_tensorrt(cuda, fail=True)
    with pytest.raises(ArtifactError, match="cannot load the engine"):
        tensorrt_backend.TensorRTRunner(engine)
