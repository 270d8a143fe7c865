"""The robot's own Python: a ``--system-site-packages`` venv on the system's OpenCV and numpy.

Robots keep their OpenCV in the system (JetPack's, or Debian/Ubuntu's python3-opencv that
ROS's cv_bridge is built against, both with GStreamer).  These fixtures rehearse README's
robot install on this machine's Debian packages: once per test run a venv is made from
``/usr/bin/python3`` with ``--system-site-packages`` and the project is installed into it
the way README tells robot users (``pip install '<repo>[onnx]'``, pip's cache keeps it
fast).  Tests skip, with the reason, only when the apt packages are missing
(``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fcn_edge.serve.environment import free_port  # re-exported: test_rtsp imports it from here

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
APT_PACKAGES = ("python3-opencv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                "gstreamer1.0-plugins-ugly gstreamer1.0-libav")
# What the tests need from the system Python: its cv2, PyGObject with GStreamer and the RTSP
# server library, and the elements the pipelines use.
_SYSTEM_CHECK = """
import cv2, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("videotestsrc", "videoconvert", "videoflip", "appsink", "x264enc", "rtspsrc", "avdec_h264")
           if Gst.ElementFactory.find(e) is None]
assert not missing, "GStreamer elements missing: " + ", ".join(missing)
import json, numpy
print(json.dumps({"cv2": cv2.__file__, "cv2_version": cv2.__version__, "numpy": numpy.__file__,
                  "numpy_version": numpy.__version__, "gstreamer": Gst.version_string()}))
"""


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment of a shell on the robot: no PYTHONPATH/venv of the test run leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["FCN_EDGE_PROGRESS"] = "0"
    env.setdefault("OMP_NUM_THREADS", "2")
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def system_python() -> dict:
    """What ``/usr/bin/python3`` imports (cv2, numpy paths and versions, GStreamer version); skips without them."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"no {SYSTEM_PYTHON}: the system-OpenCV rehearsal needs the system Python ({APT_PACKAGES})")
    done = subprocess.run([SYSTEM_PYTHON, "-c", _SYSTEM_CHECK], capture_output=True, text=True, timeout=120,
                          env=clean_env(), cwd="/")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"{SYSTEM_PYTHON} lacks the apt packages the rehearsal needs ({reason}); "
                    f"apt-get install {APT_PACKAGES} (.ci/run does)")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class RobotVenv:
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def fcn_edge(self) -> str:
        return str(self.path / "bin" / "fcn-edge")

    def run(self, *args, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              env=clean_env(self.path), cwd=str(cwd or self.path))

    def python_json(self, code: str, timeout: float = 120) -> dict:
        done = self.run(self.python, "-c", code, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def robot_venv(tmp_path_factory, system_python) -> RobotVenv:
    """README's robot install, once per run: ``python3 -m venv --system-site-packages``, ``pip install '<repo>[onnx]'``."""
    path = tmp_path_factory.mktemp("robot") / "venv"
    made = subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(path)], capture_output=True,
                          text=True, timeout=300, env=clean_env())
    if made.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} -m venv failed (apt-get install python3-venv): {made.stderr.strip()[-200:]}")
    venv = RobotVenv(path)
    installed = venv.run(venv.python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                         f"{REPO_ROOT}[onnx]", timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


class RunningProcess:
    """A child process whose stdout+stderr lines are collected by a thread, for tests that wait on its output."""

    def __init__(self, args: list, env: dict[str, str], cwd: Path | str | None = None) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env, cwd=str(cwd) if cwd else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_for(self, predicate, what: str, timeout: float = 60.0) -> str:
        """The first line from now on that satisfies ``predicate``; fails with the output when none comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._new.empty() and not self._reader.is_alive():
                    break
                continue
            if predicate(line):
                return line
        events = [line for line in self.lines if " FPS |" not in line]  # periodic stats lines last
        raise AssertionError(f"waited {timeout:.0f} s for {what}; output without the stats lines:\n"
                             + "\n".join(events[-40:]) + "\nlast lines:\n" + "\n".join(self.lines[-5:]))

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_rtsp_server(port: int, *extra: str) -> RunningProcess:
    """tests/system/rtsp_server.py under the system Python, once it says it listens."""
    server = RunningProcess([SYSTEM_PYTHON, str(Path(__file__).with_name("rtsp_server.py")), "--port", port, *extra],
                            env=clean_env(), cwd="/")
    server.wait_for(lambda line: line.startswith("ready"), "the RTSP server to listen", timeout=30)
    return server


def stop(process: RunningProcess) -> None:
    if process.process.poll() is None:
        process.signal(signal.SIGTERM)
        try:
            process.finish(10)
        except subprocess.TimeoutExpired:
            process.kill()


__all__ = ["RobotVenv", "RunningProcess", "free_port", "start_rtsp_server", "stop", "clean_env"]
