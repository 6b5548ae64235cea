"""rt-ros2 with several cameras (issue 32): one node, one engine, an image topic per camera
(parameter ``images``); each camera's results under its own namespace with its input's
header, class maps equal to the engine's segment(). Real ROS 2 topics on loopback (the helpers of
test_ros2.py); skipped where the ROS 2 wheels are not installed."""
import numpy as np

from tests.test_ros2 import (THREADS, Camera, Running, _stamp, context, exchange, ns,  # noqa: F401
                             scenes, wait_for)
from runtime import ros2_convert as convert
from runtime import open_engine
from runtime.ros2_node import camera_prefix


def test_results_go_under_each_cameras_namespace():
    assert camera_prefix("cam0/image", 0, "rt_ros2") == "cam0/rt_ros2/"
    assert camera_prefix("/front/left/image_raw", 1, "seg") == "/front/left/seg/"
    assert camera_prefix("image", 2, "rt_ros2") == "cam2/rt_ros2/"


def test_two_cameras_through_one_node_keep_their_headers_and_class_maps(context, rn18_engine):
    frames = scenes(4, seed=9)
    reference = open_engine(rn18_engine, threads=THREADS)
    expected = [reference.segment(f).class_map for f in frames]
    reference.close()
    space = ns("multicam")
    cameras = [Camera(context, space + "/cam{}".format(i), outputs=("class_map",))
               for i in range(2)]
    node = Running(context, space, rn18_engine, images=["cam0/image", "cam1/image"])
    try:
        # camera 0 sends frames 0 and 2, camera 1 frames 1 and 3: each answer on its own topic
        for index in range(4):
            camera = cameras[index % 2]
            msg = exchange(camera, frames[index], index)
            assert _stamp(msg) == (index, 1000) and msg.header.frame_id == "cam{}".format(index)
            np.testing.assert_array_equal(convert.image_array(msg), expected[index])
        for i, camera in enumerate(cameras):   # nothing of the other camera on its topic
            ids = set(m.header.frame_id for m in camera.got["class_map"])
            assert ids == {"cam{}".format(j) for j in range(i, 4, 2)}, ids
        assert node.node.node.count_subscribers(space + "/cam1/rt_ros2/class_map") == 1
    finally:
        summary = node.stop()
        for camera in cameras:
            camera.close()
    assert [c["frames"]["processed"] >= 2 for c in summary["cameras"]] == [True, True]
    assert summary["frames"]["corrupt"] == 0
