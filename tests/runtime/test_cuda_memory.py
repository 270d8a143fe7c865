"""The CUDA layer under the TensorRT runner.  GPU tests need cuda-python, pycuda or libcudart, not TensorRT.

Every ``gpu`` test runs for each binding (the ctypes one calls libcudart directly, see
test_cuda_ctypes.py for what is checked without a GPU).

Run on a GPU machine with:  python -m pytest -q tests/runtime/test_cuda_memory.py
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from fcn_edge.errors import FcnEdgeError, MissingDependencyError
from fcn_edge.runtime.cuda_ctypes import load_cudart
from fcn_edge.runtime.cuda_memory import import_cudart, open_cuda

BINDINGS = ["cuda-python", "pycuda", "ctypes"]


def _has_cuda_python() -> bool:
    try:
        import_cudart()
        return True
    except MissingDependencyError:
        return False


def _has_pycuda() -> bool:
    return importlib.util.find_spec("pycuda") is not None


def _has_libcudart() -> bool:
    try:
        load_cudart()
        return True
    except MissingDependencyError:
        return False


def test_unknown_binding_is_rejected():
    with pytest.raises(FcnEdgeError, match="cuda binding"):
        open_cuda("cupy")


def test_missing_bindings_say_what_to_install():
    if _has_cuda_python():
        pytest.skip("cuda-python is installed here")
    with pytest.raises(MissingDependencyError, match="pip install cuda-python"):
        open_cuda("cuda-python")


def _binding(name: str):
    if name == "cuda-python" and not _has_cuda_python():
        pytest.skip("cuda-python is not installed")
    if name == "pycuda" and not _has_pycuda():
        pytest.skip("pycuda is not installed")
    if name == "ctypes" and not _has_libcudart():
        pytest.skip("no libcudart found (CUDA toolkit, JetPack or nvidia-cuda-runtime wheel)")
    return open_cuda(name)


@pytest.mark.gpu
@pytest.mark.parametrize("name", BINDINGS)
def test_async_round_trip_across_two_streams_with_events(name):
    cuda = _binding(name)
    try:
        shape = (4, 64, 96, 3)
        host_in = cuda.pinned_empty(shape, np.uint8)
        host_out = cuda.pinned_empty(shape, np.uint8)
        assert host_in.shape == shape and host_in.dtype == np.uint8
        host_in[:] = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        host_out[:] = 0
        device = cuda.malloc(host_in.nbytes)
        upload_stream, download_stream = cuda.stream(), cuda.stream()
        assert upload_stream.handle != 0 and upload_stream.handle != download_stream.handle
        start, uploaded, downloaded = cuda.event(), cuda.event(), cuda.event()

        start.record(upload_stream)
        cuda.copy_htod_async(device, host_in, upload_stream)
        uploaded.record(upload_stream)
        download_stream.wait_event(uploaded)  # ordering across streams without blocking the host
        cuda.copy_dtoh_async(host_out, device, download_stream)
        downloaded.record(download_stream)
        downloaded.synchronize()

        assert downloaded.query()
        np.testing.assert_array_equal(host_out, host_in)
        assert uploaded.elapsed_ms(start) >= 0.0
        assert downloaded.elapsed_ms(start) >= uploaded.elapsed_ms(start) - 1e-3

        # part of a max-sized buffer, as the TensorRT runner copies a smaller batch
        part_out = host_out.reshape(-1)[: 64 * 96 * 3]
        part_out[:] = 0
        cuda.copy_dtoh_async(part_out, device, download_stream)
        download_stream.synchronize()
        np.testing.assert_array_equal(part_out, host_in.reshape(-1)[: 64 * 96 * 3])

        halves = cuda.pinned_empty((2, 5), np.float16)
        assert halves.dtype == np.float16 and halves.shape == (2, 5)

        assert cuda.device_name()
        major, minor = cuda.compute_capability()
        assert major >= 3 and minor >= 0

        errors = []

        def other_thread():
            try:
                cuda.make_current()
                out = cuda.pinned_empty(shape, np.uint8)
                stream = cuda.stream()
                cuda.copy_dtoh_async(out, device, stream)
                stream.synchronize()
                np.testing.assert_array_equal(out, host_in)
                stream.close()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert not errors, errors

        for event in (start, uploaded, downloaded):
            event.close()
        upload_stream.close()
        download_stream.close()
        device.free()
        device.free()  # idempotent
    finally:
        cuda.close()


@pytest.mark.gpu
@pytest.mark.parametrize("name", BINDINGS)
def test_out_of_range_device_is_a_clear_error(name):
    _binding(name).close()  # skips when the binding is absent
    with pytest.raises(FcnEdgeError, match="device 999"):
        open_cuda(name, device_id=999)
