"""The triton:// backend's logic without a server: URLs, model configs, statistics, errors.

The same backend against a real Triton server is exercised in tests/serve/test_server.py.
"""

from __future__ import annotations

import pytest

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.runtime import open_runner, resolve_backend
from fcn_edge.runtime.triton_backend import ServerStats, io_from_config, parse_statistics, parse_triton_url


def test_urls():
    a = parse_triton_url("triton://gpu-box:8000/fcn8s")
    assert (a.protocol, a.host, a.port, a.model, a.version, a.ssl) == ("http", "gpu-box", 8000, "fcn8s", "", False)
    g = parse_triton_url("triton+grpc://10.0.0.2/fcn8s/3?timeout=5")
    assert (g.protocol, g.port, g.version, g.options) == ("grpc", 8001, "3", {"timeout": "5"})
    assert parse_triton_url("triton+https://h/m").ssl and parse_triton_url("triton+https://h/m").port == 8000
    assert parse_triton_url("triton://[::1]:9000/m").endpoint == "[::1]:9000"
    assert parse_triton_url("triton+grpc://h:1/m/2").url == "triton+grpc://h:1/m/2"
    for bad, needle in (("triton://host:8000", "name the model"), ("triton:///m", "no host"),
                        ("triton://h/m/v1", "version must be a number"), ("triton://h/m?speed=9", "unknown option"),
                        ("triton://h:port/m", "port")):
        with pytest.raises(FcnEdgeError, match=needle):
            parse_triton_url(bad)
    assert resolve_backend("triton+grpc://h/m").name == "triton"


CONFIG = {
    "name": "fcn", "max_batch_size": 8,
    "input": [{"name": "frames", "data_type": "TYPE_UINT8", "dims": [512, 512, 3]}],
    "output": [{"name": "labels", "data_type": "TYPE_UINT8", "dims": [512, 512]},
               {"name": "confidence", "data_type": "TYPE_UINT8", "dims": [512, 512]}],
}


def test_io_from_a_batching_config():
    io = io_from_config(CONFIG, None, "t")
    assert (io.kind, io.size, io.batch, io.max_batch) == ("frames", (512, 512), None, 8)
    assert io.input.shape == (None, 512, 512, 3) and io.input.layout == "NHWC"
    assert io.output_names == ("labels", "confidence") and io.output("labels").shape == (None, 512, 512)


def test_io_from_a_static_config_with_grpc_style_strings_and_dynamic_size():
    config = {"max_batch_size": "0",
              "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": ["1", "3", "-1", "-1"]}],
              "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": ["1", "21", "-1", "-1"]}]}
    io = io_from_config(config, {"io": "raw", "size": [256, 320],
                                 "dynamic": {"height": [128, 256, 512], "width": [160, 320, 640]}}, "t")
    assert (io.kind, io.batch, io.size, io.preferred_size) == ("raw", 1, None, (256, 320))
    assert io.size_range == ((128, 160), (512, 640))
    assert io.network_size(None) == (256, 320)


def test_configs_fcn_edge_cannot_run_are_refused():
    with pytest.raises(ArtifactError, match="2 inputs"):
        io_from_config({**CONFIG, "input": CONFIG["input"] * 2}, None, "t")
    with pytest.raises(ArtifactError, match="TYPE_STRING"):
        io_from_config({**CONFIG, "input": [{"name": "x", "data_type": "TYPE_STRING", "dims": [1, 1, 1]}]}, None, "t")
    with pytest.raises(ArtifactError, match="4-D"):
        io_from_config({**CONFIG, "input": [{"name": "x", "data_type": "TYPE_UINT8", "dims": [64]}]}, None, "t")


def _stats(success, queue_ns, infer_ns, executions, batches, model="fcn", text=False):
    wrap = str if text else int
    return {"model_stats": [{
        "name": model, "version": "1", "inference_count": wrap(success), "execution_count": wrap(executions),
        "inference_stats": {"success": {"count": wrap(success), "ns": wrap(queue_ns + infer_ns)},
                            "fail": {"count": wrap(0), "ns": wrap(0)},
                            "queue": {"count": wrap(success), "ns": wrap(queue_ns)},
                            "compute_input": {"count": wrap(success), "ns": wrap(0)},
                            "compute_infer": {"count": wrap(success), "ns": wrap(infer_ns)},
                            "compute_output": {"count": wrap(success), "ns": wrap(0)}},
        "batch_stats": [{"batch_size": wrap(size), "compute_infer": {"count": wrap(n), "ns": wrap(1)}}
                        for size, n in batches.items()]}, {"name": "other", "inference_count": 99}]}


def test_statistics_windows_split_queue_and_compute():
    first = parse_statistics(_stats(10, 20_000_000, 50_000_000, 10, {1: 10}), "fcn")
    second = parse_statistics(_stats(30, 60_000_000, 130_000_000, 20, {1: 15, 2: 3, 4: 2}, text=True), "fcn")
    assert first.batch_executions == {1: 10} and second.mean_batch == 1.5
    window = second.minus(first)
    assert (window.success_count, window.execution_count) == (20, 10)
    assert window.batch_executions == {1: 5, 2: 3, 4: 2}
    per = window.per_request_ms()
    assert per["server_queue"] == pytest.approx(2.0) and per["server_compute"] == pytest.approx(4.0)
    assert ServerStats().per_request_ms() == {}
    assert parse_statistics(_stats(1, 1, 1, 1, {}), "absent").success_count == 0


def test_an_unreachable_server_is_one_sentence():
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install 'fcn-edge[serve]')")
    from fcn_edge.serve.environment import free_port

    with pytest.raises(FcnEdgeError, match="cannot reach Triton at 127.0.0.1") as info:
        open_runner(f"triton://127.0.0.1:{free_port()}/fcn", timeout=5)
    assert "fcn-edge serve" in str(info.value) and "\n" not in str(info.value)


def test_missing_tritonclient_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tritonclient.http", None)  # as if the package were not installed
    with pytest.raises(FcnEdgeError, match=r"pip install 'tritonclient\[http,grpc\]'"):
        open_runner("triton://127.0.0.1:1/fcn")
