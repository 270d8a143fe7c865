"""Real TensorRT on a real GPU: build-engine, then the runtime's TensorRT backend, compared with ONNX Runtime.

The engine is built by ``fcn-edge build-engine``'s Python entry point and opened with
``fcn_edge.runtime.open_runner`` -- the sidecar check, ``trt.Runtime`` preparation and
I/O reading the device does -- so this is the whole export -> engine -> run chain.
Skipped (with a reason) where TensorRT or a GPU is missing -- i.e. everywhere in this
workplace so far.  On a GPU machine (TensorRT + cuda-python or pycuda):
``python -m pytest -q tests/engine/test_trt_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


@pytest.mark.parametrize("precision,min_agreement", [("fp32", 0.999), ("fp16", 0.98)])
def test_build_load_run_matches_onnxruntime(tiny_fcn8s_aligned, tmp_path, precision, min_agreement):
    import onnxruntime as ort

    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions
    from fcn_edge.artifacts.sidecar import read_sidecar
    from fcn_edge.runtime import open_runner

    out = tmp_path / f"tiny.{precision}.engine"
    run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(precision=precision), output=out))
    side = read_sidecar(out)
    assert side.precision == precision and side.outputs[0]["name"] == "labels"
    session = ort.InferenceSession(str(tiny_fcn8s_aligned), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    expected = session.run(["labels"], {"frames": frames})[0]
    with open_runner(out) as runner:
        assert runner.backend == "tensorrt" and runner.info.num_classes == 5  # the description came through
        got = runner.infer(frames).labels
    assert got.shape == expected.shape
    assert (got == expected).mean() >= min_agreement
