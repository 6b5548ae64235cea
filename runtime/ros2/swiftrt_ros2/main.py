"""``ros2 run swiftrt_ros2 rt_ros2 --ros-args ...``: swiftrt's rt-ros2, started by ROS's tools.

The node is swiftrt's runtime; this executable only runs its command, as
``python -m runtime.cli.ros2`` does. Where swiftrt is not importable it ends with one line
and exit code 2 (what rt-ros2 does for a user error).
"""
import importlib.util
import runpy
import sys

COMMAND = "runtime.cli.ros2"


def main():
    try:
        found = importlib.util.find_spec(COMMAND) is not None
    except ImportError:  # no 'runtime' package at all
        found = False
    if not found:
        sys.stderr.write("rt_ros2: error: swiftrt's runtime cannot be imported: pip install "
                         "swiftrt, or put its folder on PYTHONPATH (docs/ros2.md)\n")
        sys.exit(2)
    runpy.run_module(COMMAND, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
