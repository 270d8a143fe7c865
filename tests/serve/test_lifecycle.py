"""Starting and stopping Triton from Python: the libpython fix, diagnoses, batching plans, outputs."""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fcn_edge.errors import FcnEdgeError
from fcn_edge.runtime import IOSpec, TensorSpec
from fcn_edge.serve.environment import (ServeError, check_port_free, diagnose_server_failure, free_port,
                                        interpreter_libpython, prepare_stub_environment, resolve_libpython)
from fcn_edge.serve.model_config import plan_repo_batching, plan_serve_batching
from fcn_edge.serve.server import BatchInferer, default_model_name, process_alive, to_dtype
from tests.serve.conftest import require_serve_packages


def _io(batch, max_batch=None):
    spec = TensorSpec("frames", "uint8", (batch, 64, 96, 3), "NHWC")
    return IOSpec("frames", spec, (TensorSpec("labels", "uint8", (batch, 64, 96), "NHW"),), size=(64, 96),
                  batch=batch, max_batch=max_batch)


def test_serve_batching_plans():
    dynamic = plan_serve_batching(_io(None, 8), None)
    assert (dynamic.max_batch_size, dynamic.chunk, dynamic.pad_to) == (8, None, None)
    over = plan_serve_batching(_io(None, 4), 10)
    assert (over.max_batch_size, over.chunk) == (10, 4) and "3 calls" in over.notes[0]
    assert plan_serve_batching(_io(None, None), None).max_batch_size == 8
    single = plan_serve_batching(_io(1, 1), None)
    assert (single.max_batch_size, single.chunk, single.pad_to) == (1, 1, 1) and "--dynamic batch" in single.notes[0]
    static4 = plan_serve_batching(_io(4, 4), 6)
    assert (static4.max_batch_size, static4.chunk, static4.pad_to) == (6, 4, 4)
    with pytest.raises(FcnEdgeError, match="at least 1"):
        plan_serve_batching(_io(None, 8), 0)


def test_repository_batching_plans():
    assert plan_repo_batching(None, 1, None).max_batch_size == 0
    assert "ignored" in plan_repo_batching(None, 1, 4).notes[0]
    plan = plan_repo_batching((1, 4, 16), None, None)
    assert (plan.max_batch_size, plan.preferred) == (16, (4, 16))
    assert plan_repo_batching((1, 4, 16), None, 8).preferred == (4, 8)
    with pytest.raises(FcnEdgeError, match="largest batch 16"):
        plan_repo_batching((1, 4, 16), None, 32)
    with pytest.raises(FcnEdgeError, match="from 1"):
        plan_repo_batching((2, 4, 16), None, None)


class _Recording:
    """Test double for a runner: labels = first channel, records call sizes."""

    def __init__(self, io):
        self.io = io
        self.sizes = []

    def infer(self, batch):
        from fcn_edge.runtime import InferenceResult

        self.sizes.append(len(batch))
        # confidence as the runtime returns it: a probability (stored uint8 x 1/255)
        return InferenceResult(labels=batch[..., 0].copy(), confidence=batch[..., 1].astype(np.float32) / 255)


def test_batch_inferer_stacks_requests_chunks_pads_and_splits_back():
    runner = _Recording(_io(4, 4))
    inferer = BatchInferer(runner, plan_serve_batching(runner.io, 6), {"labels": "uint8", "confidence": "uint8"})
    requests = [{"frames": np.full((n, 64, 96, 3), i, np.uint8)} for i, n in enumerate((1, 3, 2))]
    requests[2]["frames"][..., 1] = 200
    responses = inferer(requests)
    assert runner.sizes == [4, 4]  # 6 frames -> chunks of 4 and 2 (padded to 4)
    assert [r["labels"].shape[0] for r in responses] == [1, 3, 2]
    assert [int(r["labels"][0, 0, 0]) for r in responses] == [0, 1, 2]
    assert responses[2]["confidence"].dtype == np.uint8 and int(responses[2]["confidence"].max()) == 200


def test_outputs_return_in_the_models_dtype():
    assert to_dtype(np.array([254.6, -3.0, 300.0], np.float32), "uint8").tolist() == [255, 0, 255]
    assert to_dtype(np.array([0.25], np.float32), "float16").dtype == np.float16
    stored = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_dtype(stored.astype(np.float32) * np.float32(1 / 255), "uint8", 1 / 255), stored)
    assert default_model_name("export/fcn8s.fp16.engine") == "fcn8s.fp16"
    assert default_model_name("my model!.onnx") == "my_model"


def test_stub_environment_puts_this_interpreters_libdir_first(monkeypatch):
    require_serve_packages()
    monkeypatch.setenv("LD_LIBRARY_PATH", "/somewhere/else")
    env = prepare_stub_environment()
    libdir, libpython = interpreter_libpython()
    if libpython is None:
        pytest.skip(f"this Python ({sys.executable}) has no shared libpython: nothing to put first")
    assert env.ld_library_path.split(os.pathsep)[0] == libdir == sysconfig.get_config_var("LIBDIR")
    assert env.ld_library_path.endswith("/somewhere/else")
    if env.resolved is not None:
        assert env.matches, env.to_dict()  # ldd: the stub now loads this interpreter's libpython
    assert not env.problems


def test_diagnoses_are_one_sentence():
    assert "libpython" in diagnose_server_failure("AttributeError: '_thread.RLock' object has no attribute "
                                                  "'_recursion_count'", None)
    assert "--http-port" in diagnose_server_failure("failed to start HTTP service: Address already in use", None)
    assert "libfoo.so" in diagnose_server_failure("error while loading shared libraries: libfoo.so: cannot open", None)
    assert "boom" in diagnose_server_failure('E1125 11:59:54.980599 4593 model_lifecycle.cc:642] "boom"', None)
    port = free_port()
    check_port_free("127.0.0.1", port, "HTTP", "--http-port")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with pytest.raises(ServeError, match=f"port {port}.*--http-port"):
            check_port_free("127.0.0.1", port, "HTTP", "--http-port")


def _ports():
    ports = []
    while len(set(ports)) < 3:
        ports = [free_port() for _ in range(3)]
    return ports


def test_without_the_libdir_fix_the_server_fails_with_a_clear_reason(serve_onnx, monkeypatch):
    """On a Python that is not the system's build (pyenv, conda) the stub would load the wrong libpython."""
    require_serve_packages()
    from fcn_edge.serve import environment, server
    from fcn_edge.serve.server import ServeConfig, TritonService

    stub = environment.stub_path()
    libdir, libpython = interpreter_libpython()
    if stub is None or libpython is None:
        pytest.skip("no PyTriton stub or no shared libpython to compare")
    without_fix = resolve_libpython(stub, os.environ.get("LD_LIBRARY_PATH", "").replace(libdir, ""))
    if without_fix is None or os.path.realpath(without_fix) == os.path.realpath(libpython):
        pytest.skip("the stub loads this interpreter's libpython even without the fix: nothing can go wrong here")
    # test double: the fix is switched off, and LD_LIBRARY_PATH no longer names our LIBDIR
    monkeypatch.setattr(server, "apply_stub_environment", lambda env: None)
    monkeypatch.setenv("LD_LIBRARY_PATH", os.environ.get("LD_LIBRARY_PATH", "").replace(libdir, ""))
    http, grpc, metrics = _ports()
    service = TritonService(ServeConfig(str(serve_onnx), address="127.0.0.1", http_port=http, grpc_port=grpc,
                                        metrics_port=metrics, backend_options={"intra_op_threads": 1},
                                        startup_timeout=60))
    with pytest.raises(ServeError, match="libpython") as info:
        service.start()
    assert "LD_LIBRARY_PATH" in str(info.value) and "server log" in str(info.value)
    assert not service.runners and not service.server_pids
    kept = str(info.value).rsplit("server log: ", 1)[1].rstrip(")")
    if os.path.isfile(kept):  # the copy kept for the user; not needed here
        os.unlink(kept)


def test_service_in_process_starts_serves_and_stops_without_leftovers(serve_onnx):
    require_serve_packages()
    from fcn_edge.runtime import open_runner
    from fcn_edge.serve.server import ServeConfig, TritonService

    http, grpc, metrics = _ports()
    config = ServeConfig(str(serve_onnx), model_name="tiny-inproc", address="127.0.0.1", http_port=http,
                         grpc_port=grpc, metrics_port=metrics, instances=2, max_batch=4,
                         backend_options={"intra_op_threads": 1}, exit_timeout=2)
    with TritonService(config) as service:
        pids = service.server_pids
        workspace = str(service._tmp / "workspace")
        copies = [d for d in Path(tempfile.gettempdir()).glob("folder*")
                  if (d / "config.pbtxt").is_file() and workspace in (d / "config.pbtxt").read_text()]
        assert copies, "tritonserver keeps a copy of the loaded model in the temp dir"
        assert pids and service.is_alive()
        assert service.describe()["python_backend"]["libpython"]
        with open_runner(service.model_url) as remote:
            assert remote.io.max_batch == 4
            frame = np.zeros((2, 64, 96, 3), np.uint8)
            with open_runner(serve_onnx) as local:
                np.testing.assert_array_equal(remote.infer(frame).labels, local.infer(frame).labels)
        assert len(service.inferers) == 2
    assert not service.is_alive()
    assert not [pid for pid in pids if process_alive(pid)]
    assert not [d for d in copies if d.exists()]  # no model copies left in the temp dir


def test_pytritons_handshake_race_gets_one_more_start(serve_onnx, monkeypatch):
    """PyTriton 0.7's second instance may miss the first one's handshake socket on a busy machine: start again once."""
    require_serve_packages()
    from fcn_edge.serve import server
    from fcn_edge.serve.server import ServeConfig, TritonService

    calls = []

    def flaky_launch(self, *args):  # test double for the Triton start: the race, then success
        calls.append(len(calls))
        if len(calls) == 1:
            raise server._HandshakeRace("Triton did not start: ... get_config_from_handshake_server ...")

    monkeypatch.setattr(TritonService, "_launch", flaky_launch)
    http, grpc, metrics = _ports()
    service = TritonService(ServeConfig(str(serve_onnx), address="127.0.0.1", http_port=http, grpc_port=grpc,
                                        metrics_port=metrics, instances=2, backend_options={"intra_op_threads": 1}))
    service.start()
    assert calls == [0, 1] and service.started and len(service.runners) == 2
    service.stop()

    def always_racing(self, *args):
        raise server._HandshakeRace("Triton did not start: handshake")

    monkeypatch.setattr(TritonService, "_launch", always_racing)
    service = TritonService(ServeConfig(str(serve_onnx), address="127.0.0.1", http_port=http, grpc_port=grpc,
                                        metrics_port=metrics, backend_options={"intra_op_threads": 1}))
    with pytest.raises(ServeError, match="handshake"):
        service.start()
    assert not service.runners and not service.started
