"""rt-ros2 in a vehicle's graph (Autoware's camera pipeline style; docs/ros2.md).

    ros2 launch swiftrt_ros2 rt_ros2.launch.py model_path:=/opt/engines/swiftnet-rn18_fp16.plan \\
        input/image:=/sensing/camera/camera0/image_rect_color

Arguments: ``model_path`` (the engine), ``label_path`` and ``color_map_path`` (empty: the
manifest's names and colours), ``param_file`` (config/rt_ros2.param.yaml), ``input/image``,
``input/camera_info``, ``output/mask``, ``output/color_mask``, ``namespace``. The node is
respawned if it exits on a fault (rt-ros2 exits 1, one line).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterFile

PACKAGE = "swiftrt_ros2"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    arguments = [
        ("model_path", "", "engine: .onnx / .plan with its manifest, or a forecast bundle"),
        ("label_path", "", "class names, one a line (empty: the manifest's)"),
        ("color_map_path", "", "class colours, CSV id,name,r,g,b (empty: the manifest's)"),
        ("param_file", os.path.join(share, "config", "rt_ros2.param.yaml"), "parameters"),
        ("input/image", "/sensing/camera/camera0/image_rect_color", "camera image"),
        ("input/camera_info", "/sensing/camera/camera0/camera_info", "camera intrinsics"),
        ("output/mask", "~/class_map", "class ids (mono8)"),
        ("output/color_mask", "~/colored_segmentation_mask", "class colours (rgb8)"),
        ("namespace", "/perception/semantic_segmentation", "the node's namespace"),
    ]
    node = Node(
        package=PACKAGE, executable="rt_ros2", name="rt_ros2",
        namespace=LaunchConfiguration("namespace"),
        parameters=[ParameterFile(LaunchConfiguration("param_file"), allow_substs=True),
                    {"camera_info_topic": LaunchConfiguration("input/camera_info")}],
        remappings=[("image", LaunchConfiguration("input/image")),
                    ("~/class_map", LaunchConfiguration("output/mask")),
                    ("~/colored_segmentation_mask", LaunchConfiguration("output/color_mask"))],
        respawn=True, respawn_delay=2.0, output="screen")
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in arguments] + [node])
