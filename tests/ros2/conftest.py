"""Running ROS 2 here safely: every ROS process inside its own network namespace, SHM-only DDS.

Two belts, both always on (the tests never run ROS without them):

* ``unshare -n`` gives the processes a network namespace with only loopback (brought up
  with ``ip link set lo up``): no packet can reach another machine whatever DDS does.
  Needs root (CI runs as root) or unprivileged user namespaces; where it is refused the
  ROS tests skip with the reason.
* :func:`fcn_edge.ros2.environment.local_ros_environment`: Fast DDS with the shipped
  shared-memory-only profile (test_node.py asserts the node holds no UDP socket).

Each session uses a random ROS_DOMAIN_ID so concurrent runs on one machine (shared
/dev/shm) do not see each other.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

HERE = Path(__file__).resolve().parent
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs")


def namespace_refusal() -> str | None:
    """Why ``unshare -n`` + ``ip link set lo up`` cannot be used here, or None when it can."""
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed ({package}): the ROS 2 tests only run in a network namespace"
    try:
        done = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -n failed: {exc}"
    if done.returncode != 0:
        return f"unshare -n is refused here ({done.stderr.strip() or done.returncode}): run as root or allow user namespaces"
    return None


def missing_ros() -> str | None:
    missing = [m for m in ROS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"ROS 2 is not installed ({', '.join(missing)} missing): pip install 'fcn-edge[ros2]' (x86_64) or apt"
    return None


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory):
    """The environment for ROS processes: SHM-only Fast DDS, a random domain, the repo on PYTHONPATH."""
    reason = missing_ros() or namespace_refusal()
    if reason:
        pytest.skip(reason)
    from fcn_edge.ros2.environment import local_ros_environment

    env = local_ros_environment(cli_env(), domain_id=random.SystemRandom().randint(1, 100))
    env["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    env["OMP_NUM_THREADS"] = "1"
    return env


def in_namespace(command: list[str]) -> list[str]:
    """``command`` inside a new network namespace whose loopback is up: the only way tests start ROS."""
    return ["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + " ".join(shlex.quote(c) for c in command)]


def run_in_namespace(command: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(in_namespace(command), env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def ros_scenario(ros_env, tiny_onnx, tmp_path_factory):
    """Run tests/ros2/scenario.py once (two nodes + a probe node, in one namespace); its report and arrays."""
    from tests.onnx_models import write_video
    from tests.ros2.frames import FRAME_SIZE

    out = tmp_path_factory.mktemp("ros2_scenario")
    video = write_video(out / "direct.mp4", count=6, size=FRAME_SIZE)
    done = run_in_namespace([sys.executable, str(HERE / "scenario.py"), str(tiny_onnx), str(out), str(video)],
                            ros_env, 300)
    report_path = out / "report.json"
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(out.glob("*.log")))
    assert done.returncode == 0 and report_path.exists(), f"{done.stdout}\n{done.stderr}\n{logs}"
    report = json.loads(report_path.read_text())
    report["_logs"] = {p.stem: p.read_text() for p in out.glob("*.log")}
    report["_dir"] = out
    report["_video"] = video
    return report
