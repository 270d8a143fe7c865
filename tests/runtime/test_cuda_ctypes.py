"""The ctypes CUDA layer (libcudart called directly) without a GPU, against the real library.

These machines have the CUDA 13 toolkit (``/usr/local/cuda``, ``libcudart.so.13``) and no
NVIDIA driver: discovery, the error names and texts, the runtime version and the
driver-missing sentence all come from real libcudart calls here.  What needs a GPU
(allocations, copies, streams, events) is in test_cuda_memory.py's ``gpu`` tests, which
run for ctypes as for cuda-python and pycuda.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import sys
import types

import pytest

from fcn_edge.errors import FcnEdgeError, MissingDependencyError
from fcn_edge.runtime import cuda_ctypes, tensorrt_backend
from fcn_edge.runtime.cuda_ctypes import CUDART_ENV, CtypesCudaMemory, load_cudart
from fcn_edge.runtime.cuda_memory import CUDA_CHOICES, CudaError, check_binding, choose_binding, open_cuda

TOOLKIT_LIBS = sorted(glob.glob("/usr/local/cuda/lib64/libcudart.so.[0-9]*"), key=len)
needs_toolkit = pytest.mark.skipif(not TOOLKIT_LIBS, reason="needs the CUDA toolkit's libcudart under /usr/local/cuda")


@pytest.fixture
def plain_environment(monkeypatch):
    """No FCN_EDGE_CUDART, LD_LIBRARY_PATH or CUDA_HOME: discovery as on a fresh shell."""
    for name in (CUDART_ENV, "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _driver_loaded() -> bool:
    return load_cudart().version("cudaDriverGetVersion") != 0


def _one_sentence(message: str) -> None:
    assert "\n" not in message and ". " not in message, message


@needs_toolkit
def test_discovery_finds_the_toolkit_libcudart_and_its_error_table(plain_environment):
    plain_environment.setattr(cuda_ctypes, "_wheel_folders", lambda: [])  # a CUDA wheel in this venv would come first
    cudart = load_cudart()
    assert os.path.realpath(cudart.path) == os.path.realpath(TOOLKIT_LIBS[0])
    assert cudart.path.startswith("/usr/local/cuda/")
    assert cudart.version("cudaRuntimeGetVersion") >= 11000
    # the codes this layer names, checked against the library's own table
    assert cudart.error_name(cuda_ctypes.ERROR_STUB_LIBRARY) == "cudaErrorStubLibrary"
    assert cudart.error_name(cuda_ctypes.ERROR_INSUFFICIENT_DRIVER) == "cudaErrorInsufficientDriver"
    assert cudart.error_name(cuda_ctypes.ERROR_NO_DEVICE) == "cudaErrorNoDevice"
    assert cudart.error_name(cuda_ctypes.ERROR_NOT_READY) == "cudaErrorNotReady"
    assert cudart.error_name(cuda_ctypes.ERROR_SYSTEM_DRIVER_MISMATCH) == "cudaErrorSystemDriverMismatch"
    assert cudart.error_name(999) == "cudaErrorUnknown"
    assert "driver" in cudart.error_text(cuda_ctypes.ERROR_INSUFFICIENT_DRIVER)


@needs_toolkit
@pytest.mark.parametrize("layout", ["nvidia/cuda_runtime/lib", "nvidia/cu13/lib"])
def test_nvidia_wheel_layouts_are_found_on_sys_path(plain_environment, tmp_path, layout):
    """The folders NVIDIA's nvidia-cuda-runtime wheels install into (CUDA 12 and CUDA 13 layouts)."""
    folder = tmp_path / "site-packages" / layout
    folder.mkdir(parents=True)
    (folder / "libcudart.so.13").symlink_to(os.path.realpath(TOOLKIT_LIBS[0]))
    plain_environment.syspath_prepend(str(tmp_path / "site-packages"))
    cudart = load_cudart()
    assert cudart.path == str(folder / "libcudart.so.13")
    assert cudart.version("cudaRuntimeGetVersion") >= 11000


@needs_toolkit
def test_no_driver_is_one_sentence_naming_the_library(plain_environment):
    if _driver_loaded():
        pytest.skip("an NVIDIA driver is loaded here")
    with pytest.raises(CudaError) as caught:
        open_cuda("ctypes")
    message = str(caught.value)
    _one_sentence(message)
    assert message.startswith("no NVIDIA driver is loaded")
    assert "cudaErrorInsufficientDriver" in message and "cudaGetDeviceCount" in message
    assert load_cudart().path in message
    assert "install the NVIDIA driver" in message


def test_named_empty_folder_lists_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv(CUDART_ENV, str(tmp_path))
    with pytest.raises(MissingDependencyError) as caught:
        CtypesCudaMemory()
    message = str(caught.value)
    _one_sentence(message)
    assert f"{tmp_path} (no libcudart.so* in it)" in message and CUDART_ENV in message
    for hint in ("JetPack", "CUDA toolkit", "pip install nvidia-cuda-runtime-cu12"):
        assert hint in message


def test_a_named_file_that_is_not_libcudart_is_reported(tmp_path):
    fake = tmp_path / "libcudart.so.12"
    fake.write_bytes(b"not an ELF file")
    with pytest.raises(MissingDependencyError, match="libcudart.so.12"):
        load_cudart(str(fake))
    with pytest.raises(MissingDependencyError, match=r"libcudart\.so\.99 \(not found\)"):
        load_cudart("libcudart.so.99")  # a loader name


def test_no_libcudart_anywhere_lists_every_place_in_order(plain_environment, tmp_path):
    """A machine without CUDA: the toolkit folders and loader names are replaced by absent ones here
    (this machine's real ones hold CUDA 13); LD_LIBRARY_PATH and the wheel folder are real folders."""
    ld_folder, site = tmp_path / "ld", tmp_path / "site"
    ld_folder.mkdir()
    (site / "nvidia" / "cuda_runtime" / "lib").mkdir(parents=True)
    plain_environment.setenv("LD_LIBRARY_PATH", str(ld_folder))
    plain_environment.syspath_prepend(str(site))
    plain_environment.setattr(cuda_ctypes, "_system_folders", lambda: [str(tmp_path / "usr-local-cuda-lib64")])
    plain_environment.setattr(cuda_ctypes, "LOADER_NAMES", ("libcudart-absent.so.1",))
    plain_environment.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(MissingDependencyError) as caught:
        load_cudart()
    message = str(caught.value)
    _one_sentence(message)
    places = [str(ld_folder), str(site / "nvidia" / "cuda_runtime" / "lib"), str(tmp_path / "usr-local-cuda-lib64"),
              "libcudart-absent.so.1"]
    positions = [message.index(place) for place in places]
    assert positions == sorted(positions), message
    assert "no such folder" in message and "not found" in message


def _without_python_bindings(monkeypatch) -> None:
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_auto_picks_ctypes_when_neither_binding_imports(monkeypatch):
    _without_python_bindings(monkeypatch)
    assert choose_binding("auto") == "ctypes"
    assert choose_binding("pycuda") == "pycuda"  # a forced choice is kept
    monkeypatch.setattr("fcn_edge.runtime.cuda_memory.import_cudart", lambda: object())
    assert choose_binding("auto") == "cuda-python"


@needs_toolkit
def test_auto_without_bindings_reaches_libcudart(monkeypatch):
    if _driver_loaded():
        pytest.skip("an NVIDIA driver is loaded here")
    _without_python_bindings(monkeypatch)
    with pytest.raises(CudaError, match="^no NVIDIA driver is loaded"):
        open_cuda("auto")


def test_bad_binding_is_one_sentence_listing_the_choices(tmp_path):
    with pytest.raises(FcnEdgeError) as caught:
        check_binding("cupy")
    _one_sentence(str(caught.value))
    for choice in CUDA_CHOICES:
        assert choice in str(caught.value)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    from fcn_edge.api import Segmenter

    with pytest.raises(FcnEdgeError, match="cuda binding must be one of auto, cuda-python, pycuda, ctypes"):
        Segmenter.open(str(engine), cuda="cupy")  # before TensorRT is imported


@needs_toolkit
def test_segmenter_open_with_cuda_ctypes_reaches_libcudart(monkeypatch, tmp_path):
    """Segmenter.open -> TensorRT runner -> open_cuda('ctypes'); TensorRT itself is a stand-in (not installed here)."""
    if _driver_loaded():
        pytest.skip("an NVIDIA driver is loaded here")
    monkeypatch.setattr(tensorrt_backend, "require", lambda name, purpose=None: types.SimpleNamespace(__version__="10.3.0"))
    asked = []
    real_open_cuda = tensorrt_backend.open_cuda
    monkeypatch.setattr(tensorrt_backend, "open_cuda", lambda b, d: asked.append((b, d)) or real_open_cuda(b, d))
    engine = tmp_path / "m.engine"  # no sidecar: the runner loads it plainly, after opening CUDA
    engine.write_bytes(b"engine")
    from fcn_edge.api import Segmenter

    with pytest.raises(CudaError, match="^no NVIDIA driver is loaded"):
        Segmenter.open(str(engine), cuda="ctypes")
    assert asked == [("ctypes", 0)]


def test_cuda_flag_of_run_and_bench(capsys):
    from fcn_edge.bench.command import build_config
    from fcn_edge.cli import build_parser
    from fcn_edge.stream.command import backend_options

    parser = build_parser()
    run = parser.parse_args(["run", "m.engine", "--source", "0", "--cuda", "ctypes"])
    assert backend_options("tensorrt", run)["cuda"] == "ctypes"
    assert build_config(parser.parse_args(["bench", "m.engine", "--cuda", "ctypes"])).options["cuda"] == "ctypes"
    assert "cuda" not in build_config(parser.parse_args(["bench", "m.engine"])).options
    assert backend_options("tensorrt", parser.parse_args(["serve", "m.engine", "--cuda", "ctypes"]))["cuda"] == "ctypes"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "m.engine", "--source", "0", "--cuda", "cupy"])
    err = capsys.readouterr().err
    assert "--cuda: invalid choice: 'cupy'" in err and all(choice in err for choice in CUDA_CHOICES)


def test_doctor_reports_libcudart(monkeypatch, tmp_path):
    from fcn_edge.doctor import probe_libcudart

    monkeypatch.setenv(CUDART_ENV, str(tmp_path))
    probe = probe_libcudart()
    assert not probe.ok and "nvidia-cuda-runtime-cu12" in probe.hint
    if TOOLKIT_LIBS:
        monkeypatch.setenv(CUDART_ENV, TOOLKIT_LIBS[0])
        probe = probe_libcudart()
        assert probe.ok and probe.detail.startswith(TOOLKIT_LIBS[0]) and "CUDA runtime" in probe.detail


@needs_toolkit
def test_every_call_reaches_libcudart_and_fails_as_one_sentence():
    """Without a driver every runtime call answers cudaErrorInsufficientDriver before using its arguments,
    so each method's call (argument types included) runs for real and comes back as one CudaError."""
    if _driver_loaded():
        pytest.skip("an NVIDIA driver is loaded here")
    import numpy as np

    memory = CtypesCudaMemory.__new__(CtypesCudaMemory)
    memory._attach(load_cudart(), 0)  # past the device-count check, which would stop here
    stream = cuda_ctypes._CtypesStream(memory.rt, ctypes.c_void_p())  # the legacy default stream (NULL)
    event = cuda_ctypes._CtypesEvent(memory.rt, ctypes.c_void_p())
    host = np.zeros((2, 3), np.float16)
    calls = {
        "cudaSetDevice(0)": memory.make_current,
        "cudaMalloc(64 bytes)": lambda: memory.malloc(64),
        "cudaMallocHost(12 bytes)": lambda: memory.pinned_empty((2, 3), np.float16),
        "cudaMemcpyAsync host->device": lambda: memory.copy_htod_async(0, host, stream),
        "cudaMemcpyAsync device->host": lambda: memory.copy_dtoh_async(host, 0, stream),
        "cudaStreamCreateWithFlags": memory.stream,
        "cudaEventCreate": memory.event,
        "cudaGetDeviceProperties": memory.device_name,
        "cudaDeviceGetAttribute(75)": memory.compute_capability,
        "cudaStreamSynchronize": stream.synchronize,
        "cudaStreamWaitEvent": lambda: stream.wait_event(event),
        "cudaEventRecord": lambda: event.record(stream),
        "cudaEventSynchronize": event.synchronize,
        "cudaEventQuery": event.query,
        "cudaEventElapsedTime": lambda: event.elapsed_ms(event),
        "cudaEventDestroy": event.close,
        "cudaStreamDestroy": stream.close,
    }
    for what, call in calls.items():
        with pytest.raises(CudaError) as caught:
            call()
        message = str(caught.value)
        _one_sentence(message)
        assert message.startswith(f"CUDA {what} failed: ") and "(cudaErrorInsufficientDriver, " in message, message
    memory.close()  # nothing pinned: nothing to free
