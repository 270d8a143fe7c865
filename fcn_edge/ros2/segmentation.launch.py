"""ros2 launch file for the fcn_edge segmentation node (``fcn-edge ros2``).

fcn-edge is a pip package, not an ament package, so the node is started with
``ExecuteProcess`` (the fcn-edge on PATH, i.e. the venv's) rather than launch_ros's
``Node(package=...)``; parameters and remaps travel as ``--ros-args``::

    ros2 launch $(python -c "import fcn_edge.ros2 as r; print(r.LAUNCH_FILE)") \\
        model:=/models/fcn8s.fp16.engine image:=/camera/color/image_raw publish_overlay:=true

Arguments: ``model`` (required), ``image`` (input topic to remap ``image`` to),
``namespace``, ``qos`` (sensor_data | reliable), ``compressed`` (true: subscribe
``<image>/compressed``), ``publish_overlay``, ``publish_color_mask`` (compute them even
without subscribers), ``shm_only`` (true: machine-local DDS with the shipped
shared-memory-only Fast DDS profile).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration

ARGUMENTS = {
    "model": ("", "model file: .engine, .onnx or .pt"),
    "image": ("image", "input topic (sensor_msgs/Image; with compressed:=true its /compressed)"),
    "namespace": ("/", "namespace of the node and its topics"),
    "qos": ("sensor_data", "input QoS: sensor_data or reliable (bag playback)"),
    "compressed": ("false", "subscribe sensor_msgs/CompressedImage on <image>/compressed"),
    "publish_overlay": ("false", "compute the overlay even without subscribers"),
    "publish_color_mask": ("false", "compute the colour mask even without subscribers"),
    "shm_only": ("false", "machine-local DDS: shared-memory-only Fast DDS profile"),
}


def _command(shm_only: bool) -> list:
    arg = LaunchConfiguration
    cmd = ["fcn-edge", "ros2", arg("model")]
    if shm_only:
        cmd.append("--shm-only")
    return cmd + [
        "--ros-args",
        "-r", "__node:=fcn_edge",
        "-r", ["__ns:=", arg("namespace")],
        "-r", ["image:=", arg("image")],
        "-r", ["image/compressed:=", arg("image"), "/compressed"],
        "-p", ["qos:=", arg("qos")],
        "-p", ["compressed:=", arg("compressed")],
        "-p", ["publish_overlay:=", arg("publish_overlay")],
        "-p", ["publish_color_mask:=", arg("publish_color_mask")],
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    shm = LaunchConfiguration("shm_only")
    return LaunchDescription(declared + [
        ExecuteProcess(cmd=_command(True), output="screen", sigterm_timeout="5", condition=IfCondition(shm)),
        ExecuteProcess(cmd=_command(False), output="screen", sigterm_timeout="5", condition=UnlessCondition(shm)),
    ])
