"""GPU probe (CUDA driver via ctypes), build-environment messages, progress bars, small helpers."""

from __future__ import annotations

import ctypes

import pytest

from fcn_edge.engine.build import default_engine_path, read_calibration_cache_header
from fcn_edge.engine.build_progress import MonitorBars, PhaseTicker
from fcn_edge.engine.environment import detect_build_environment
from fcn_edge.artifacts.gpu import GpuInfo, GpuUnavailable, parse_compute_capability, probe_gpu
from fcn_edge.engine.onnx_info import facts_from_model, read_onnx_facts
from fcn_edge.errors import ArtifactError, MissingDependencyError
from tests.engine.trt_double import make_recording_tensorrt


class FakeCudaDriver:
    """TEST DOUBLE of libcuda's driver API (the few entry points probe_gpu uses)."""

    def __init__(self, name=b"Orin", cc=(8, 7), integrated=1, init_status=0, count=1):
        self.name, self.cc, self.integrated, self.init_status, self.count = name, cc, integrated, init_status, count

    @staticmethod
    def _set(ref, value):
        ref._obj.value = value

    def cuInit(self, flags):
        return self.init_status

    def cuDeviceGetCount(self, ref):
        self._set(ref, self.count)
        return 0

    def cuDeviceGet(self, ref, index):
        self._set(ref, index)
        return 0

    def cuDeviceGetName(self, buf, size, device):
        ctypes.memmove(buf, self.name + b"\0", len(self.name) + 1)
        return 0

    def cuDeviceGetAttribute(self, ref, attr, device):
        self._set(ref, {75: self.cc[0], 76: self.cc[1], 18: self.integrated}[attr])
        return 0

    def cuDriverGetVersion(self, ref):
        self._set(ref, 12020)
        return 0


def test_probe_gpu_reads_the_driver():
    gpu = probe_gpu(loader=lambda: FakeCudaDriver())
    assert gpu == GpuInfo("Orin", (8, 7), integrated=True, index=0, driver_version=12020)
    assert gpu.sm == "8.7" and GpuInfo.from_dict(gpu.to_dict()) == gpu


@pytest.mark.parametrize("driver,needle", [
    (FakeCudaDriver(init_status=100), "reports no CUDA device"),
    (FakeCudaDriver(init_status=999), "cuInit error 999"),
    (FakeCudaDriver(count=0), "reports no device"),
])
def test_probe_gpu_failures_are_sentences(driver, needle):
    with pytest.raises(GpuUnavailable, match=needle):
        probe_gpu(loader=lambda: driver)
    with pytest.raises(GpuUnavailable, match="does not exist"):
        probe_gpu(3, loader=lambda: FakeCudaDriver())


def test_compute_capability_forms():
    assert parse_compute_capability("8.6") == parse_compute_capability([8, 6]) == parse_compute_capability(86) == (8, 6)


def _no_trt(name):
    raise ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt")


def _no_gpu(index):
    raise GpuUnavailable("no NVIDIA driver found (libcuda.so.1 cannot be loaded): install the NVIDIA driver")


def test_environment_names_everything_missing():
    with pytest.raises(MissingDependencyError) as info:
        detect_build_environment(importer=_no_trt, probe=_no_gpu, jetson=False)
    text = str(info.value)
    assert "TensorRT's Python bindings are not installed" in text and "pip install tensorrt" in text
    assert "no usable NVIDIA GPU" in text and "\n" not in text
    with pytest.raises(MissingDependencyError, match="JetPack"):
        detect_build_environment(importer=_no_trt, probe=lambda i: GpuInfo("Orin", (8, 7), True), jetson=True)
    with pytest.raises(MissingDependencyError, match="fail to import .*OSError: libnvinfer"):
        detect_build_environment(importer=lambda n: (_ for _ in ()).throw(OSError("libnvinfer.so.10: cannot open")),
                                 probe=lambda i: GpuInfo("x", (8, 6)), jetson=False)


def test_environment_found():
    trt = make_recording_tensorrt("10.3.0")
    env = detect_build_environment(importer=lambda n: trt, probe=lambda i: GpuInfo("A10", (8, 6)), jetson=False)
    assert str(env.trt_version) == "10.3.0" and env.gpu.name == "A10"


class FakeBar:
    def __init__(self, total=None, desc="", **kw):
        self.total, self.desc, self.n, self.closed, self.postfix = total, desc, 0, False, None

    def update(self, k):
        self.n += k

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def set_description_str(self, text, refresh=True):
        self.desc = text

    def refresh(self):
        pass

    def close(self):
        self.closed = True


def test_monitor_bars_follow_tensorrt_phases():
    made = []
    bars = MonitorBars(make_bar=lambda **kw: made.append(FakeBar(**kw)) or made[-1])
    bars.phase_start("Building", None, 4)
    bars.phase_start("Timing", "Building", 10)
    bars.phase_start("Conv tactics", "Timing", 3)
    assert bars.step_complete("Building", 1) is True
    assert made[0].n == 2 and made[0].postfix == "Conv tactics" and len(made) == 1
    bars.cancelled = True
    assert bars.step_complete("Building", 2) is False
    bars.phase_finish("Building")
    assert made[0].closed


def test_phase_ticker():
    made = []
    with PhaseTicker(make_bar=lambda **kw: made.append(FakeBar(**kw)) or made[-1], interval=0.01) as ticker:
        ticker.phase("parsing")
        ticker.phase("building")
    assert ticker.phases == ["parsing", "building"] and made[0].closed and made[0].desc == "building"


def test_default_engine_path(tmp_path):
    assert default_engine_path(tmp_path / "fcn8s.onnx", "fp16").name == "fcn8s.fp16.engine"
    assert default_engine_path(tmp_path / "fcn8s.int8.onnx", "int8").name == "fcn8s.int8.engine"
    assert default_engine_path(tmp_path / "a.b.onnx", "fp32").name == "a.b.fp32.engine"


def test_calibration_cache_header(tmp_path):
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\ninput: 3c010a14\n/net/conv1_1/Conv_output_0: 3d4ccccd\n")
    tag, algorithm, names = read_calibration_cache_header(cache)
    assert (tag, algorithm) == ("8601", "EntropyCalibration2") and "/net/conv1_1/Conv_output_0" in names
    cache.write_text("TRT-8601-EntropyCalibration2\ninput 3c010a14\n")
    with pytest.raises(ArtifactError, match="line 2"):
        read_calibration_cache_header(cache)
    cache.write_text("TRT-8601-EntropyCalibration2\n")
    with pytest.raises(ArtifactError, match="no tensor scales"):
        read_calibration_cache_header(cache)


def test_metadata_goes_through_the_exporters_parser(head8_onnx, tmp_path):
    """Absent fcn-edge metadata builds from the graph alone; a broken description is refused, naming the file."""
    import onnx

    facts = read_onnx_facts(head8_onnx)
    assert facts.model_info["arch"] == "fcn8s" and facts.export_info["io"] == "frames"
    assert facts.inputs[0].name == "frames" and facts.inputs[0].dtype == "uint8" and not facts.is_dynamic
    assert facts.padded_deconvs == ("upscore",) and not facts.has_qdq and facts.opset == 17
    model = onnx.load(str(head8_onnx))
    for prop in model.metadata_props:
        if prop.key == "fcn_edge.model":
            prop.value = "{broken"
        if prop.key == "fcn_edge.export":
            prop.value = "[1, 2]"
    with pytest.raises(ArtifactError, match="head8.onnx: .*re-export it with fcn-edge export"):
        facts_from_model(model, head8_onnx, "0" * 64)
    del model.metadata_props[:]
    bare = facts_from_model(model, head8_onnx, "0" * 64)
    assert (bare.model_info, bare.export_info) == (None, {})
    assert bare.inputs == facts.inputs and bare.outputs == facts.outputs
