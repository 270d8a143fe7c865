"""The device half's own tests, run under JetPack's Pythons with the numpy each JetPack ships.

=========  ======  ======  ======  =========================
JetPack    Python  numpy   OpenCV  TensorRT
=========  ======  ======  ======  =========================
5.1.x      3.8     1.17.4  4.5.4   8.5.2 (Xavier and Orin)
6.0 - 6.2  3.10    1.21.5  4.8.0   8.6.2 (6.0), 10.3 (6.1/6.2)
=========  ======  ======  ======  =========================

For each Python, one environment made from this checkout's wheel, in two stages:

1. ``pip install fcn_edge.whl[engine] numpy==<JetPack's> opencv-python-headless==<JetPack's
   OpenCV version>`` (a pip wheel: JetPack's own OpenCV build is not on PyPI) and pytest.
   Everything that needs no ONNX Runtime runs here: the TensorRT runner's flow against
   its test double, the ctypes CUDA layer against the real libcudart, streams, sinks,
   sidecars, build-engine's planning, info, doctor.  ONNX Runtime is asserted absent.
2. ``pip install fcn_edge.whl[onnx,client] numpy==1.21.6``: every onnxruntime wheel on PyPI since
   1.14 requires numpy >= 1.21.6 (cp38's last release, 1.19.2, too), so neither JetPack's
   1.17.4 nor its 1.21.5 can run it; 1.21.6 is the oldest numpy it accepts (a bug-fix of
   JetPack 6's 1.21 line).  The tests that run ONNX models (the API, ``run``, ``bench``,
   ``info``, the ``triton://`` client up to an unreachable server) follow, on models this
   session exported (no torch in these environments).

The tests are the main suite's own files, run with ``python -m pytest`` in that environment.
Interpreters: ``FCN_EDGE_PY38`` / ``FCN_EDGE_PY310``, else ``$(pyenv root)/versions/3.8.*``;
a missing one skips with where it was looked for.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from tests.compat import venvs
from tests.onnx_models import PREBUILT_MODELS_ENV

pytestmark = venvs.skip_when_asked


@dataclass(frozen=True)
class JetPack:
    release: str
    numpy: str
    opencv: str  # the opencv-python-headless release nearest JetPack's OpenCV that imports with its numpy


JETPACKS = {
    "3.8": JetPack("5.1", numpy="1.17.4", opencv="4.5.4.60"),
    # 4.9, not JetPack 6's 4.8: the 4.8 wheels (4.8.0.76, 4.8.1.78) fail to import with numpy
    # 1.21 ("'numpy._DTypeMeta' object is not subscriptable" in cv2/typing, which needs numpy
    # 1.22); 4.9.0.80 is the oldest that imports.  Whether JetPack's own 4.8.0 build does is
    # for a device to say.
    "3.10": JetPack("6", numpy="1.21.5", opencv="4.9.0.80"),
}
# The oldest numpy that onnxruntime's PyPI wheels accept (Requires-Dist numpy>=1.21.6).
ONNXRUNTIME_NUMPY = "1.21.6"

# Stage 1: the device half's tests that need neither ONNX Runtime nor torch.
WITHOUT_ONNXRUNTIME = (
    "tests/runtime/test_tensorrt_flow.py",
    "tests/runtime/test_trt_buffers.py",
    "tests/runtime/test_cuda_ctypes.py",
    "tests/runtime/test_cuda_memory.py",
    "tests/stream/test_feed.py",
    "tests/stream/test_mjpeg.py",
    "tests/stream/test_sinks.py",
    "tests/stream/test_sources.py",
    "tests/stream/test_stats.py",
    "tests/stream/test_visualize.py",
    "tests/bench/test_stats.py",
    "tests/bench/test_config.py",
    "tests/bench/test_io_bytes.py",
    "tests/runtime/test_triton_backend.py",
    "tests/engine/test_sidecar.py",
    # build-engine on JetPack 5: options, profiles (packaged, through the 3.8 fallback), plans, caches
    "tests/engine/test_cli.py",
    "tests/engine/test_profiles.py",
    "tests/engine/test_plan.py",
    "tests/engine/test_environment.py",
    "tests/engine/test_cache.py",
    "tests/engine/test_trt_build_double.py",
    "tests/test_doctor.py",
    "tests/test_cli_python.py",  # every parser builds; on 3.8 the build half refuses in one line
    "tests/ros2",  # the ROS 2 node's code: image conversions run; the node itself skips without rclpy
    # fcn_edge.imaging's robust image reading, resize and preprocessing (through data/'s re-exports)
    "tests/data/test_imageio.py",
    "tests/data/test_transforms.py",
)
# Stage 2: the tests that run ONNX models (on the exported models this session hands over).
WITH_ONNXRUNTIME = (
    "tests/runtime/test_onnxruntime_backend.py",
    "tests/runtime/test_imports.py",
    "tests/runtime/test_registry.py",
    "tests/runtime/test_tensorrt_backend.py",
    "tests/stream/test_runner.py",
    "tests/stream/test_command.py",
    "tests/stream/test_multi.py",
    "tests/test_api.py",
    "tests/test_info.py",
    "tests/bench/test_bench_api.py",
    "tests/bench/test_command.py",
    "tests/runtime/test_triton_backend.py",  # again, with tritonclient (the client extra) installed
)


@dataclass
class Outcome:
    """What one stage of one Python gave: the versions installed and pytest's summary, or why not."""

    found: dict = field(default_factory=dict)
    summary: str = ""
    error: str | None = None
    skip: str | None = None

    def check(self) -> dict:
        if self.skip:
            pytest.skip(self.skip)
        assert self.error is None, self.error
        return self.found


def run_tests(venv: venvs.Venv, files, basetemp, models=None) -> str:
    """``python -m pytest FILES`` in ``venv`` from the checkout; returns the summary line, fails with the output."""
    env = {PREBUILT_MODELS_ENV: str(models)} if models else {}
    completed = venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
                         *files, cwd=venvs.REPO_ROOT, timeout=900, **env)
    output = completed.stdout + completed.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert completed.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, summary
    return summary


def both_stages(version: str, root, wheel, models) -> dict[str, Outcome]:
    """Stage 1 then stage 2 of ``version`` in one environment; each stage's outcome (never raises)."""
    python, why_not = venvs.find_python(version)
    if python is None:
        return {"core": Outcome(skip=why_not), "onnx": Outcome(skip=why_not)}
    jetpack = JETPACKS[version]
    venv = venvs.Venv.create(root / f"py{version.replace('.', '')}", python)
    stages = (
        ("core", ("--no-compile", f"{wheel}[engine]", f"numpy=={jetpack.numpy}",
                  f"opencv-python-headless=={jetpack.opencv}", "pytest"), WITHOUT_ONNXRUNTIME, None),
        ("onnx", ("--no-compile", f"{wheel}[onnx,client]", f"numpy=={ONNXRUNTIME_NUMPY}"), WITH_ONNXRUNTIME, models),
    )
    outcomes: dict[str, Outcome] = {}
    for stage, requirements, files, stage_models in stages:
        outcome = outcomes[stage] = Outcome()
        try:
            venv.pip_install(*requirements)
        except AssertionError as exc:  # stage 2 cannot follow a failed install
            outcome.error = f"pip install failed: {exc}"
            outcomes.setdefault("onnx", Outcome(error=f"stage 1 could not install: {exc}"))
            break
        outcome.found = venv.versions("numpy", "opencv-python-headless", "onnxruntime", "onnx", "tritonclient", "torch")
        try:
            outcome.summary = run_tests(venv, files, root / f"pytest-{version}-{stage}", stage_models)
        except AssertionError as exc:
            outcome.error = str(exc)
    return outcomes


@pytest.fixture(scope="session")
def jetpack_runs(venvs_root, fcn_edge_wheel, prebuilt_models):
    """Every Python's two stages, the Pythons side by side: two processes on two cores, about half the wall time."""
    with ThreadPoolExecutor(max_workers=len(JETPACKS)) as pool:
        futures = {v: pool.submit(both_stages, v, venvs_root, fcn_edge_wheel, prebuilt_models) for v in JETPACKS}
    return {version: future.result() for version, future in futures.items()}


@pytest.mark.parametrize("version", sorted(JETPACKS))
def test_device_half_with_jetpacks_numpy(version, jetpack_runs):
    """Stage 1: JetPack's numpy and OpenCV version, no ONNX Runtime, no torch."""
    outcome = jetpack_runs[version]["core"]
    found = outcome.check()
    jetpack = JETPACKS[version]
    assert found["numpy"] == jetpack.numpy and found["opencv-python-headless"] == jetpack.opencv, found
    assert found["onnxruntime"] is None and found["torch"] is None, found
    print(f"Python {version}, {found}: {outcome.summary}")


@pytest.mark.parametrize("version", sorted(JETPACKS))
def test_device_half_with_onnx_extra(version, jetpack_runs):
    """Stage 2: the onnx extra on the oldest numpy onnxruntime accepts; the tests that run ONNX models."""
    outcome = jetpack_runs[version]["onnx"]
    found = outcome.check()
    assert found["numpy"] == ONNXRUNTIME_NUMPY and found["onnxruntime"] and found["tritonclient"], found
    assert found["torch"] is None, found
    print(f"Python {version}, {found}: {outcome.summary}")
