"""TensorRT behind Triton on a real GPU: build-engine -> fcn-edge serve -> triton:// clients; triton-repo of the engine.

Skipped (with a reason) without TensorRT, a GPU or the serve packages -- everywhere in
this workplace so far.  On a GPU machine with TensorRT and cuda-python/pycuda::

    pip install -e ".[dev]" && python -m pytest -q tests/serve/test_server_gpu.py
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fcn_edge.serve.server import process_alive
from tests.serve.conftest import MAX_BATCH, require_serve_packages

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


@pytest.fixture(scope="module")
def fp32_engine(serve_onnx, tmp_path_factory):
    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions

    out = tmp_path_factory.mktemp("gpu") / "tiny_serve.fp32.engine"
    run_build(BuildRequest(onnx=serve_onnx, options=BuildOptions(precision="fp32"), output=out))
    return out


def test_serving_an_engine_matches_onnxruntime_under_concurrency(fp32_engine, serve_onnx):
    require_serve_packages()
    from fcn_edge.runtime import open_runner
    from fcn_edge.serve.environment import free_port
    from fcn_edge.serve.server import ServeConfig, TritonService

    ports = [free_port() for _ in range(3)]
    config = ServeConfig(str(fp32_engine), model_name="tiny-trt", address="127.0.0.1", http_port=ports[0],
                         grpc_port=ports[1], metrics_port=ports[2], max_batch=MAX_BATCH,
                         max_queue_delay_us=20000, instances=2)
    agreements: list[float] = []
    errors: list[BaseException] = []
    with TritonService(config) as service, open_runner(serve_onnx) as local:
        assert service.runners[0].backend == "tensorrt"
        pids = service.server_pids

        def client(seed: int) -> None:
            try:
                with open_runner(service.model_url) as remote:
                    for k in range(5):
                        frames = np.random.default_rng(seed * 10 + k).integers(0, 256, (1, 64, 96, 3), np.uint8)
                        agreements.append(float((remote.infer(frames).labels == local.infer(frames).labels).mean()))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with open_runner(service.model_url) as remote:
            stats = remote.server_statistics()
    assert not errors, errors
    assert len(agreements) == 40 and min(agreements) >= 0.999
    assert max(stats.batch_executions) > 1
    assert not [pid for pid in pids if process_alive(pid)]


def test_triton_repo_checks_the_engine_against_this_machine(fp32_engine, tmp_path):
    pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is not installed")
    import tensorrt as trt

    from fcn_edge.artifacts.gpu import probe_gpu
    from fcn_edge.serve.repo import RepoConfig, write_repository

    gpu = probe_gpu()
    written = write_repository([fp32_engine], RepoConfig(output=tmp_path / "models", server_trt=trt.__version__,
                                                         server_gpu_sm=gpu.sm))
    from fcn_edge.artifacts.sidecar import read_sidecar

    largest = read_sidecar(fp32_engine).inputs[0]["profile"]["max"][0]
    assert written[0].platform == "tensorrt_plan" and written[0].spec.batch.max_batch_size == largest
    assert (tmp_path / "models" / written[0].name / "1" / "model.plan").read_bytes() == fp32_engine.read_bytes()
