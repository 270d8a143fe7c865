"""The shipped launch file builds a valid ``fcn-edge ros2`` command line.

ROS 2's ``launch`` package is not on PyPI (it comes with apt's ROS 2), so this test loads
the launch file with small stand-ins for the four ``launch`` names it uses, which only
record their arguments; it then resolves the command with the declared defaults and
parses it with fcn-edge's own argument parser.  What ``ros2 launch`` itself does with
the file is only confirmed on a machine with apt's ROS 2 (see README, ROS 2).
"""

from __future__ import annotations

import argparse
import runpy
import sys
import types

import pytest

from fcn_edge.ros2.settings import SETTINGS


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    pass


@pytest.fixture
def launch_stand_ins(monkeypatch):
    modules = {name: types.ModuleType(name) for name in
               ("launch", "launch.actions", "launch.conditions", "launch.substitutions")}
    modules["launch"].LaunchDescription = Recorded
    modules["launch.actions"].DeclareLaunchArgument = Recorded
    modules["launch.actions"].ExecuteProcess = Recorded
    modules["launch.conditions"].IfCondition = Recorded
    modules["launch.conditions"].UnlessCondition = Recorded
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def resolve(part, values):
    if isinstance(part, str):
        return part
    if isinstance(part, LaunchConfiguration):
        return values[part.args[0]]
    return "".join(resolve(p, values) for p in part)


def test_launch_file_command_parses(launch_stand_ins):
    from fcn_edge.cli import build_parser
    from fcn_edge.ros2 import LAUNCH_FILE

    description = runpy.run_path(str(LAUNCH_FILE))["generate_launch_description"]()
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if "default_value" in a.kwargs}
    assert {"model", "image", "namespace", "qos", "shm_only"} <= set(declared)
    processes = [a for a in actions if "cmd" in a.kwargs]
    assert len(processes) == 2  # with and without --shm-only, chosen by the shm_only argument
    values = {**declared, "model": "/models/fcn.engine", "image": "/camera/image_raw"}
    for process in processes:
        cmd = [resolve(part, values) for part in process.kwargs["cmd"]]
        assert cmd[:2] == ["fcn-edge", "ros2"]
        args = build_parser().parse_args(cmd[1:])
        assert args.model == "/models/fcn.engine"
        ros = args.ros_args
        pairs = list(zip(ros[::2], ros[1::2]))
        assert all(flag in ("-p", "-r") for flag, _ in pairs) and len(ros) % 2 == 0
        params = dict(value.split(":=", 1) for flag, value in pairs if flag == "-p")
        assert set(params) <= {s.name for s in SETTINGS}, params
        remaps = dict(value.split(":=", 1) for flag, value in pairs if flag == "-r")
        assert remaps["image"] == "/camera/image_raw" and remaps["image/compressed"] == "/camera/image_raw/compressed"
        assert remaps["__node"] == "fcn_edge"
        assert isinstance(args, argparse.Namespace)
    assert sum(1 for p in processes if "--shm-only" in p.kwargs["cmd"]) == 1
