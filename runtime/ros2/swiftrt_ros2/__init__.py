"""rt-ros2 as a ROS 2 package: the executable ``rt_ros2`` runs swiftrt's ``runtime.cli.ros2``."""
