"""Real TensorRT on a real GPU: build, load through the sidecar check, run, compare with ONNX Runtime.

Skipped (with a reason) where TensorRT or a GPU is missing -- i.e. everywhere in this
workplace so far.  On a GPU machine: ``python -m pytest -q tests/engine/test_trt_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


@pytest.mark.parametrize("precision,min_agreement", [("fp32", 0.999), ("fp16", 0.98)])
def test_build_load_run_matches_onnxruntime(tiny_fcn8s_aligned, tmp_path, precision, min_agreement):
    import onnxruntime as ort

    from benchmarks.trt_end_to_end import DeviceMemory, EngineRunner
    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions
    from fcn_edge.engine.sidecar import read_sidecar

    out = tmp_path / f"tiny.{precision}.engine"
    run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(precision=precision), output=out))
    side = read_sidecar(out)
    assert side.precision == precision and side.outputs[0]["name"] == "labels"
    runner = EngineRunner(out, DeviceMemory())
    session = ort.InferenceSession(str(tiny_fcn8s_aligned), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    expected = session.run(["labels"], {"frames": frames})[0]
    got = runner.run({"frames": frames})["labels"]
    assert got.shape == expected.shape
    assert (got == expected).mean() >= min_agreement
