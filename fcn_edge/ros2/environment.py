"""The process environment ROS 2 needs here: machine-local transport and the wheels' libraries.

Two separate things, both needed before ``rclpy`` is imported in a process:

* **Machine-local DDS.**  :func:`local_ros_environment` points Fast DDS at the shipped
  profile (:data:`SHM_PROFILE`: shared memory only, no UDP socket at all) and removes
  ``ROS_LOCALHOST_ONLY`` / ``ROS_AUTOMATIC_DISCOVERY_RANGE`` / ``ROS_STATIC_PEERS``: with
  any of those rmw_fastrtps swaps the profile's transport for a loopback UDP one.  The
  tests and benchmarks also run every ROS process in a network namespace of its own
  (``unshare -n``) so nothing can leave the machine even if a transport were opened.
* **PyPI wheels.**  The ``ros-jazzy-*`` wheels keep their shared libraries in
  ``<venv>/lib`` and ``site-packages/ros_*.libs``, found only through
  ``LD_LIBRARY_PATH``.  Their ``ros-wheels-bootstrapper`` sets it by re-executing every
  Python of the venv; :func:`wheel_library_dirs` gives the same folders so a process we
  start works also when that re-execution is switched off.  apt installs (a Jetson)
  need none of this: ``source /opt/ros/<distro>/setup.bash`` sets everything.

``python -m fcn_edge.ros2.environment --profile`` prints the profile's path;
``--exports`` prints the shell lines that make a shell's ROS 2 processes machine-local.
Standard library only: importing this never imports ROS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

SHM_PROFILE = Path(__file__).resolve().with_name("fastdds_shm_only.xml")

# rmw_fastrtps turns these into a UDPv4 loopback transport that replaces the profile's.
UDP_FORCING_VARIABLES = ("ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS")


def wheel_library_dirs(prefix: Optional[str] = None) -> List[str]:
    """Folders holding the PyPI ROS 2 wheels' shared libraries (empty for apt installs)."""
    prefix = prefix or sys.prefix
    site = Path(prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    dirs = sorted(str(p) for p in site.glob("ros_*.libs") if p.is_dir())
    if dirs:
        dirs.insert(0, str(Path(prefix) / "lib"))
    return dirs


def local_ros_environment(base: Optional[Mapping[str, str]] = None, *, domain_id: Optional[int] = None,
                          profile: Optional[Path] = None) -> Dict[str, str]:
    """``base`` (default ``os.environ``) made for machine-local ROS 2 over shared memory only."""
    env = dict(os.environ if base is None else base)
    path = str(profile or SHM_PROFILE)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = path
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    for name in UDP_FORCING_VARIABLES:
        env.pop(name, None)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    libs = wheel_library_dirs()
    if libs:
        current = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in current if p not in libs])
    return env


def shell_exports() -> str:
    """Shell lines doing what :func:`local_ros_environment` does, for users' terminals and launch files."""
    lines = ["export RMW_IMPLEMENTATION=rmw_fastrtps_cpp",
             f"export FASTRTPS_DEFAULT_PROFILES_FILE={SHM_PROFILE}",
             f"export FASTDDS_DEFAULT_PROFILES_FILE={SHM_PROFILE}"]
    lines += [f"unset {name}" for name in UDP_FORCING_VARIABLES]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--profile"]:
        print(SHM_PROFILE)
        return 0
    if args == ["--exports"]:
        print(shell_exports())
        return 0
    print("usage: python -m fcn_edge.ros2.environment --profile | --exports", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
