"""``fcn-edge ros2``'s command line and the composition example, with real rclpy in a network namespace."""

from __future__ import annotations

import json
import sys

from tests.conftest import REPO_ROOT, assert_one_line_error
from tests.onnx_models import write_video
from tests.ros2.conftest import run_in_namespace


def test_help_lists_every_setting_without_ros(run_cli):
    from fcn_edge.ros2.settings import SETTINGS

    done = run_cli("ros2", "--help", check=True)
    for option in ("--compressed", "--source", "--frame-id", "--qos", "--publish", "--overlay-alpha", "--ros-args",
                   "--shm-only"):
        assert option in done.stdout
    assert {s.name for s in SETTINGS} >= {"model", "publish_overlay", "qos"}


def test_missing_model_is_one_line_error(ros_env, tmp_path):
    done = run_in_namespace([sys.executable, "-m", "fcn_edge", "ros2", str(tmp_path / "missing.onnx")], ros_env, 120)
    assert_one_line_error(done, "missing.onnx")
    done = run_in_namespace([sys.executable, "-m", "fcn_edge", "ros2", "--ros-args", "-p", "qos:=fast"], ros_env, 120)
    assert_one_line_error(done, "no model given")
    done = run_in_namespace([sys.executable, "-m", "fcn_edge", "ros2", str(tmp_path / "m.onnx"), "--ros-args", "-p",
                             "overlay_alpha:=1"], ros_env, 120)
    assert_one_line_error(done, "parameter overlay_alpha", "give a float")


def test_unusable_source_is_one_line_error(ros_env, tiny_onnx, tmp_path):
    done = run_in_namespace([sys.executable, "-m", "fcn_edge", "ros2", str(tiny_onnx), "--source",
                             str(tmp_path / "no_such_clip.mp4")], ros_env, 120)
    assert_one_line_error(done, "no_such_clip.mp4")


def test_compose_example(ros_env, tiny_onnx, tmp_path):
    """examples/ros2_compose.py: the node in the robot's own executor answers the robot's frames."""
    video = write_video(tmp_path / "clip.mp4", count=6, size=(96, 128))
    done = run_in_namespace([sys.executable, str(REPO_ROOT / "examples" / "ros2_compose.py"), str(tiny_onnx),
                             str(video), "--masks", "3"], ros_env, 180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) >= 3
    assert all(line["size"] == [96, 128] and line["frame_id"] == "camera" for line in lines)
    assert all(abs(sum(line["classes"].values()) - 1.0) < 0.01 for line in lines)
    assert len({line["stamp"] for line in lines}) == len(lines)


SHM_ONLY_CHECK = r'''
import os, signal, subprocess, sys, time
node = subprocess.Popen([sys.executable, "-m", "fcn_edge", "ros2", sys.argv[1], "--shm-only"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
lines = []
for line in node.stdout:
    lines.append(line)
    if "outputs /fcn_edge/class_mask" in line:
        break
time.sleep(1.0)  # discovery has started by now; any UDP socket would be open
udp = set()
for name in ("udp", "udp6"):
    for row in open(f"/proc/{node.pid}/net/{name}").read().splitlines()[1:]:
        udp.add(row.split()[9])
held = {os.readlink(f"/proc/{node.pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{node.pid}/fd")
        if os.readlink(f"/proc/{node.pid}/fd/{fd}").startswith("socket:[")}
node.send_signal(signal.SIGINT)
rest = node.communicate(timeout=30)[0]
print("UDP", len(udp & held), "IN_NAMESPACE", len(udp), "RC", node.returncode)
print("".join(lines) + rest)
'''


def test_shm_only_flag_sets_the_profile_in_process(ros_env, tiny_onnx):
    """--shm-only alone (no profile variables in the environment) keeps the node off UDP."""
    env = {k: v for k, v in ros_env.items()
           if k not in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION")}
    done = run_in_namespace([sys.executable, "-c", SHM_ONLY_CHECK, str(tiny_onnx)], env, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "UDP 0 IN_NAMESPACE 0 RC 0" in done.stdout, done.stdout


def test_without_ros_the_error_says_how_to_install(run_cli, tmp_path, tiny_onnx):
    """An rclpy that cannot be imported (a shadowing test double raising ImportError, as on a machine without ROS)."""
    (tmp_path / "rclpy").mkdir()
    (tmp_path / "rclpy" / "__init__.py").write_text("raise ImportError(\"No module named 'rclpy'\", name='rclpy')\n")
    done = run_cli("ros2", tiny_onnx, env={"PYTHONPATH": f"{tmp_path}:{REPO_ROOT}"})
    assert_one_line_error(done, "'rclpy' is needed to run fcn-edge ros2", "--system-site-packages",
                          "pip install 'fcn-edge[ros2]'")
    assert done.returncode == 3
