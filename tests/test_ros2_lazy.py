"""rt-ros2's modules import without ROS (and without torch): rclpy is imported when a node is
made, so the rest of the runtime, and a device without ROS, never need it. Runs everywhere,
also where test_ros2.py is skipped for want of the ROS 2 wheels."""
import subprocess
import sys

from tests.conftest import REPO


def test_ros2_modules_import_without_rclpy_or_torch():
    code = ("import sys\n"
            "import runtime.ros2_node, runtime.ros2_convert, runtime.cli.ros2\n"
            "bad = [m for m in ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'torch')"
            " if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
