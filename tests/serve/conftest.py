"""Fixtures for the Triton tests: a tiny dynamic-batch model and a real ``fcn-edge serve`` process.

The server tests need nvidia-pytriton (which ships tritonserver) and tritonclient; they
skip with the reason when either cannot be imported (e.g. macOS, or a Linux without
glibc 2.35).  One server per test module keeps the added time to a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import cli_env

MAX_BATCH = 8


def require_serve_packages():
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install 'fcn-edge[serve]')")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed (pip install 'fcn-edge[serve]')")
    pytest.importorskip("pytriton.triton", reason="nvidia-pytriton is not installed (pip install 'fcn-edge[serve]'; "
                                                  "Linux x86_64/aarch64 with glibc 2.35+ only)")


@pytest.fixture(scope="session")
def serve_onnx(tmp_path_factory, tiny_checkpoint):
    """``fcn-edge export`` of the tiny checkpoint: frames uint8 [N,64,96,3], N dynamic 1..8 (optimal 4) ->
    labels uint8 + confidence uint8 (probability x 255)."""
    from tests.onnx_models import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("serve") / "tiny_serve.onnx", batch=4,
                             dynamic=("batch",), min_shape=(1, 64, 96), max_shape=(MAX_BATCH, 64, 96),
                             outputs=("labels", "confidence"))


def wait_ready(server: "ServeProcess", timeout: float = 180.0) -> None:
    """Until the *model* is ready (the server's own /v2/health/ready turns 200 before PyTriton loads it)
    and the command has printed its 'ready' line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"fcn-edge serve exited with {server.process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{server.http}/v2/models/{server.name}/ready", timeout=2) as response:
                if response.status == 200 and any(line.startswith("ready") for line in server.lines):
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"the server at {server.http} was not ready within {timeout:.0f} s")


class ServeProcess:
    """A running ``python -m fcn_edge serve`` with its output collected."""

    def __init__(self, args: list[str], http_port: int, grpc_port: int, metrics_port: int, name: str) -> None:
        self.http_port, self.grpc_port, self.metrics_port, self.name = http_port, grpc_port, metrics_port, name
        # its own process group, as under systemd or a supervisor: stop(group=True) signals all of it
        self.process = subprocess.Popen([sys.executable, "-m", "fcn_edge", *args], env=cli_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"triton://127.0.0.1:{self.http_port}/{self.name}"

    @property
    def grpc_url(self) -> str:
        return f"triton+grpc://127.0.0.1:{self.grpc_port}/{self.name}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0, group: bool = False) -> int:
        """Signal the command (or, ``group=True``, its whole process group: tritonserver too)."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait(10)
        self._reader.join(5)
        return code


@pytest.fixture(scope="module")
def triton_server(serve_onnx):
    """``fcn-edge serve`` on 127.0.0.1 with free ports (stopped by the test that checks shutdown, else here)."""
    require_serve_packages()
    from fcn_edge.serve.environment import free_port

    ports = []
    while len(set(ports)) < 3:
        ports = [free_port() for _ in range(3)]
    name = "tiny"
    server = ServeProcess(["serve", str(serve_onnx), "--address", "127.0.0.1", "--http-port", str(ports[0]),
                           "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--model-name", name,
                           "--max-batch", str(MAX_BATCH), "--max-queue-delay-us", "20000", "--threads", "1",
                           "--exit-timeout", "3"], *ports, name)
    try:
        wait_ready(server)
    except AssertionError as exc:
        server.stop(signal.SIGKILL)
        raise AssertionError(f"{exc}\n{server.output}") from None
    yield server
    if server.process.poll() is None:
        server.stop()
