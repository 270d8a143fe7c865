"""ROS 2 integration: the ``fcn-edge ros2`` segmentation node and what it needs.

* :class:`SegmentationNode` (``fcn_edge.ros2.node``): the node, as a class for robot code
  that composes its own executor; imported lazily because it needs rclpy.
* :mod:`fcn_edge.ros2.conversions`: sensor_msgs/Image and CompressedImage <-> numpy
  (no ROS import).
* :mod:`fcn_edge.ros2.environment`: the shipped Fast DDS shared-memory-only profile
  (:data:`SHM_PROFILE`) and the environment for machine-local ROS 2 (no ROS import).
* ``fcn_edge/ros2/segmentation.launch.py``: a launch file for ``ros2 launch``.

ROS 2 itself: on a Jetson, Humble or Jazzy from apt (``source /opt/ros/<distro>/setup.bash``,
venv with ``--system-site-packages``); on an x86_64 desktop ``pip install 'fcn-edge[ros2]'``
(the Jazzy wheels from PyPI).  This package is on the device side: it imports the runtime,
the streaming code and the API, never the build half (export, calib, engine, data, train, models).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SHM_PROFILE", "LAUNCH_FILE", "local_ros_environment", "SegmentationNode"]


def __getattr__(name: str) -> Any:
    """Lazy: ``python -m fcn_edge.ros2.environment`` must not find its module imported already."""
    if name == "SegmentationNode":
        from fcn_edge.ros2.node import SegmentationNode

        return SegmentationNode
    if name in ("SHM_PROFILE", "local_ros_environment"):
        from fcn_edge.ros2 import environment

        return getattr(environment, name)
    if name == "LAUNCH_FILE":
        from fcn_edge.ros2.environment import SHM_PROFILE

        return SHM_PROFILE.with_name("segmentation.launch.py")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
