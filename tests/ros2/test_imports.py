"""fcn_edge.ros2 loads without ROS where it can and without torch everywhere (its layer: tests/test_layers.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.ros2.conftest import missing_ros

ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces", "launch")


def _top_level_imports(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_ros2_package_imports_ros_lazily():
    """Only the node (and the launch file) import ROS at top level: the command, the conversions and the
    environment helper load without a ROS install.  (Which fcn_edge layers ros2 may import is
    tests/test_layers.py's job: ros2 is device half.)"""
    for path in sorted((REPO_ROOT / "fcn_edge" / "ros2").glob("*.py")):
        for name in _top_level_imports(path):
            if name.split(".")[0] in ROS_MODULES:
                assert path.name in ("node.py", "segmentation.launch.py"), f"{path.name} imports {name} at top level"


def test_package_conversions_and_command_import_without_ros():
    code = textwrap.dedent("""
        import sys
        import fcn_edge.ros2, fcn_edge.ros2.conversions, fcn_edge.ros2.environment, fcn_edge.ros2.command
        print("LOADED", [m for m in ("rclpy", "torch", "onnx", "onnxruntime") if m in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


def test_node_module_pulls_in_no_torch():
    if missing_ros():
        pytest.skip(missing_ros())
    code = textwrap.dedent("""
        import sys
        from fcn_edge.ros2 import SegmentationNode
        print("LOADED", [m for m in ("torch", "tensorrt", "pycuda") if m in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout
