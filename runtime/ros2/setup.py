"""The ament_python package swiftrt_ros2: rt-ros2 as a ROS 2 package (docs/ros2.md).

What colcon installs: the ament resource index marker (so that ament_index and `ros2 run`
find the package), package.xml, the launch file and its parameters, and the executable
`rt_ros2` (lib/swiftrt_ros2/). The node is swiftrt's runtime, installed on its own
(pip install swiftrt, or the Jetson image's /app on PYTHONPATH): `rt_ros2` says so in one
line where it cannot import it.
"""
import glob
import os

from setuptools import setup

PACKAGE = "swiftrt_ros2"
HERE = os.path.dirname(os.path.abspath(__file__))


def files(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", files("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", files("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="rt-ros2 (swiftrt's segmentation node) as a ROS 2 package",
    license="Apache-2.0",
    entry_points={"console_scripts": ["rt_ros2 = swiftrt_ros2.main:main"]},
)
