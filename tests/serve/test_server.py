"""The real Triton server (``fcn-edge serve``) on 127.0.0.1: labels, batching, bad requests, clients, shutdown.

One server for the module; the last test stops it with SIGTERM and checks that no
server process is left.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request

import numpy as np
import pytest

from fcn_edge.api import Segmenter
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime import open_runner
from fcn_edge.runtime.triton_backend import parse_statistics
from fcn_edge.serve.server import process_alive
from tests.onnx_models import write_video
from tests.serve.conftest import MAX_BATCH

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def _frames(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 96, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def local(serve_onnx):
    with open_runner(serve_onnx, intra_op_threads=1) as runner:
        yield runner


def _client(server):
    import tritonclient.http as http

    return http.InferenceServerClient(f"127.0.0.1:{server.http_port}", connection_timeout=30, network_timeout=30)


def _request(batch: np.ndarray, dtype: str = "UINT8", name: str = "frames"):
    import tritonclient.http as http

    tensor = http.InferInput(name, list(batch.shape), dtype)
    tensor.set_data_from_numpy(batch, binary_data=True)
    return [tensor]


def test_health_metrics_and_the_published_model_description(triton_server, serve_onnx):
    from fcn_edge.export import read_onnx_metadata

    tiny_info = read_onnx_metadata(serve_onnx)[0]
    assert _get(triton_server.http + "/v2/health/live")[0] == 200
    assert _get(triton_server.http + "/v2/health/ready")[0] == 200
    assert _get(f"{triton_server.http}/v2/models/{triton_server.name}/ready")[0] == 200
    status, metrics = _get(f"http://127.0.0.1:{triton_server.metrics_port}/metrics")
    assert status == 200 and "nv_inference_request_success" in metrics
    status, text = _get(f"{triton_server.http}/v2/models/{triton_server.name}/config")
    config = json.loads(text)
    assert config["max_batch_size"] == MAX_BATCH and config["dynamic_batching"]["max_queue_delay_microseconds"] == 20000
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [("frames", "TYPE_UINT8", [64, 96, 3])]
    # exactly the exported model's outputs: uint8 labels, uint8 confidence (probability x 255)
    assert [(t["name"], t["data_type"]) for t in config["output"]] == [("labels", "TYPE_UINT8"),
                                                                       ("confidence", "TYPE_UINT8")]
    described = ModelInfo.from_json(config["parameters"]["fcn_edge.model"]["string_value"])
    assert described.to_dict() == tiny_info.to_dict()
    assert json.loads(config["parameters"]["fcn_edge.export"]["string_value"])["dynamic"]["batch"][2] == MAX_BATCH
    banner = triton_server.output
    assert f"serving {serve_onnx}" in banner and triton_server.url in banner and "ready" in banner


def test_concurrent_clients_get_the_local_labels_and_triton_batches_them(triton_server, local):
    clients, per_client = 8, 6
    errors: list[BaseException] = []
    mismatches: list[str] = []
    barrier = threading.Barrier(clients)

    def work(seed: int) -> None:
        client = _client(triton_server)
        try:
            barrier.wait(timeout=30)
            for k in range(per_client):
                frame = _frames(1, seed * 100 + k)
                response = client.infer(triton_server.name, _request(frame))
                labels, confidence = response.as_numpy("labels"), response.as_numpy("confidence")
                expected = local.infer(frame)
                if not np.array_equal(labels, expected.labels):
                    mismatches.append(f"client {seed} request {k}: labels differ")
                stored = np.rint(expected.confidence * 255).astype(np.uint8)  # the runner reads uint8 x 1/255
                if confidence.dtype != np.uint8 or not np.array_equal(confidence, stored):
                    mismatches.append(f"client {seed} request {k}: confidence differs")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    before = parse_statistics(json.loads(_get(f"{triton_server.http}/v2/models/{triton_server.name}/stats")[1]),
                              triton_server.name)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not mismatches, mismatches
    after = parse_statistics(json.loads(_get(f"{triton_server.http}/v2/models/{triton_server.name}/stats")[1]),
                             triton_server.name)
    delta = after.minus(before)
    assert delta.success_count == clients * per_client and delta.inference_count == clients * per_client
    # Triton's dynamic batcher combined concurrent requests into batches larger than one
    assert max(delta.batch_executions) > 1, delta.batch_executions
    assert delta.execution_count < delta.inference_count


def test_a_request_batch_of_several_frames(triton_server, local):
    client = _client(triton_server)
    try:
        frames = _frames(5, 7)
        response = client.infer(triton_server.name, _request(frames))
        np.testing.assert_array_equal(response.as_numpy("labels"), local.infer(frames).labels)
    finally:
        client.close()


def test_malformed_requests_fail_alone_while_others_are_served(triton_server, local):
    from tritonclient.utils import InferenceServerException

    stop = threading.Event()
    good = {"ok": 0, "bad": 0}

    def steady() -> None:
        client = _client(triton_server)
        try:
            while not stop.is_set():
                frame = _frames(1, 99)
                out = client.infer(triton_server.name, _request(frame)).as_numpy("labels")
                good["ok" if np.array_equal(out, local.infer(frame).labels) else "bad"] += 1
        finally:
            client.close()

    worker = threading.Thread(target=steady)
    worker.start()
    client = _client(triton_server)
    try:
        cases = {
            "wrong dtype": _request(np.zeros((1, 64, 96, 3), np.float32), dtype="FP32"),
            "wrong shape": _request(np.zeros((1, 65, 96, 3), np.uint8)),
            "batch too large": _request(np.zeros((MAX_BATCH + 1, 64, 96, 3), np.uint8)),
            "wrong input name": _request(np.zeros((1, 64, 96, 3), np.uint8), name="image"),
        }
        messages = {}
        for what, request in cases.items():
            with pytest.raises(InferenceServerException) as info:
                client.infer(triton_server.name, request)
            messages[what] = str(info.value)
        # the good request right after the bad ones is still served
        frame = _frames(1, 5)
        np.testing.assert_array_equal(client.infer(triton_server.name, _request(frame)).as_numpy("labels"),
                                      local.infer(frame).labels)
    finally:
        stop.set()
        worker.join(60)
        client.close()
    assert "data-type" in messages["wrong dtype"] or "FP32" in messages["wrong dtype"], messages
    assert "shape" in messages["wrong shape"], messages
    assert "batch" in messages["batch too large"].lower(), messages
    assert good["ok"] > 0 and good["bad"] == 0, good
    assert _get(triton_server.http + "/v2/health/ready")[0] == 200


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_url_is_a_model_path(triton_server, local, protocol, serve_onnx):
    from fcn_edge.export import read_onnx_metadata

    tiny_info = read_onnx_metadata(serve_onnx)[0]
    url = triton_server.url if protocol == "http" else triton_server.grpc_url
    with open_runner(url, stats_interval=0) as remote:
        assert remote.backend == "triton" and remote.info.to_dict() == tiny_info.to_dict()
        assert remote.io.kind == "frames" and remote.io.size == (64, 96)
        assert remote.io.batch is None and remote.io.max_batch == MAX_BATCH
        assert remote.io.output_names == ("labels", "confidence")
        frames = _frames(3, 11)
        result = remote.infer(frames)
        expected = local.infer(frames)
        np.testing.assert_array_equal(result.labels, expected.labels)
        np.testing.assert_allclose(result.confidence, expected.confidence, atol=1e-5)
        for _ in range(3):
            result = remote.infer(frames[:1])
        # the request time split into server queue + compute (Triton's statistics) and the rest (network)
        assert {"infer", "request", "server_queue", "server_compute", "network"} <= set(result.timings)
        assert result.timings["server_compute"] > 0
        assert abs(result.timings["network"] + result.timings["server_queue"] + result.timings["server_compute"]
                   - result.timings["request"]) < 1e-6 or result.timings["network"] == 0
        pending = [remote.submit(frames[i:i + 1]) for i in range(2)]  # two requests in flight
        assert [p.result().labels.shape for p in pending] == [(1, 64, 96)] * 2
        described = remote.describe()
        assert described["protocol"] == protocol and described["model_name"] == triton_server.name
        assert described["described"] and "network" in described["timing_notes"]
        since = remote.run_statistics()
        assert since is not None and since.success_count >= 6


def test_segmenter_open_with_a_triton_url(triton_server, serve_onnx):
    frame = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with Segmenter.open(triton_server.url) as remote, Segmenter.open(str(serve_onnx)) as here:
        got, want = remote.segment(frame), here.segment(frame)
        assert remote.class_names == here.class_names
    np.testing.assert_array_equal(got.labels, want.labels)
    assert "backend_request" in got.timings


def test_fcn_edge_run_with_two_cameras_on_a_remote_model(triton_server, run_cli, tmp_path):
    videos = [write_video(tmp_path / f"cam{i}.mp4", count=8, size=(120, 160)) for i in range(2)]
    stats = tmp_path / "stats.json"
    completed = run_cli("run", triton_server.url, "--source", videos[0], "--source", videos[1],
                        "--stats-json", stats, "--batch-timeout-ms", "50")
    assert completed.returncode == 0, completed.stderr
    data = json.loads(stats.read_text())
    assert data["total"]["frames"]["processed"] == 16 and data["batching"]["mode"] == "batched"
    assert data["backend"]["backend"] == "triton"
    backend = data["sources"][0]["backend_latency_ms"]
    assert backend["request"]["count"] == 8


def test_unreachable_server_and_unknown_model_are_one_line_errors(triton_server, run_cli, tmp_path):
    from fcn_edge.serve.environment import free_port
    from tests.conftest import assert_one_line_error

    video = write_video(tmp_path / "v.mp4", count=2)
    completed = run_cli("run", f"triton://127.0.0.1:{free_port()}/tiny", "--source", video)
    assert_one_line_error(completed, "cannot reach Triton", "fcn-edge serve")
    completed = run_cli("run", f"triton://127.0.0.1:{triton_server.http_port}/nope", "--source", video)
    assert_one_line_error(completed, "'nope'", "not loaded")


def test_port_in_use_is_a_one_line_error_before_starting(triton_server, run_cli, serve_onnx):
    from tests.conftest import assert_one_line_error

    completed = run_cli("serve", serve_onnx, "--address", "127.0.0.1", "--http-port", triton_server.http_port,
                        "--grpc-port", "1", "--metrics-port", "2", timeout=120)
    assert_one_line_error(completed, f"port {triton_server.http_port}", "--http-port")


def test_sigterm_to_the_group_stops_the_server_and_leaves_no_process(triton_server):
    """systemd (KillMode=control-group), ``timeout`` and Ctrl-C signal tritonserver and its stubs as well."""
    from fcn_edge.serve.server import server_processes

    pids = server_processes(triton_server.process.pid)
    assert pids, "tritonserver should run below fcn-edge serve"
    assert all(os.getpgid(pid) == triton_server.process.pid for pid in pids)   # the signal reaches them too
    code = triton_server.stop(signal.SIGTERM, group=True)
    assert code == 0, triton_server.output
    assert "Traceback" not in triton_server.output and "did not stop cleanly" not in triton_server.output
    assert "stopped" in triton_server.output
    assert not [pid for pid in pids if process_alive(pid)], triton_server.output
