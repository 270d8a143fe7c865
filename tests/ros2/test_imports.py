"""fcn_edge.ros2 is on the device side: no build-half module, no torch, rclpy only where the node needs it."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.ros2.conftest import missing_ros

# what fcn_edge.ros2 may import from fcn_edge (the artifact contract included)
ALLOWED = ("fcn_edge.ros2", "fcn_edge.runtime", "fcn_edge.stream", "fcn_edge.api", "fcn_edge.artifacts",
           "fcn_edge.errors", "fcn_edge.lazy", "fcn_edge.fileio", "fcn_edge.cliargs")
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces", "launch")


def _imports(path: Path, top_level_only: bool = False) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in (ast.iter_child_nodes(tree) if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_ros2_package_imports_only_the_device_side():
    for path in sorted((REPO_ROOT / "fcn_edge" / "ros2").glob("*.py")):
        for name in _imports(path):  # not even inside functions
            if name.startswith("fcn_edge"):
                assert name.startswith(ALLOWED), f"{path.name} imports {name} (build half?)"
        for name in _imports(path, top_level_only=True):
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
