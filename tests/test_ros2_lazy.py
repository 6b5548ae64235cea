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


def test_fastdds_profile_is_chosen_by_distribution_and_never_over_the_users_choice():
    from runtime.ros2_node import FASTDDS_PROFILE, fastdds_profile_setting
    # PyPI wheels (no ROS_DISTRO) and Kilted+: Fast DDS 3's variable
    assert fastdds_profile_setting({}) == ("FASTDDS_DEFAULT_PROFILES_FILE", FASTDDS_PROFILE)
    assert fastdds_profile_setting({"ROS_DISTRO": "kilted"})[0] == "FASTDDS_DEFAULT_PROFILES_FILE"
    # an empty variable is no profile (Fast DDS only logs an error for it)
    assert fastdds_profile_setting({"FASTDDS_DEFAULT_PROFILES_FILE": ""})[1] == FASTDDS_PROFILE
    assert fastdds_profile_setting({"ROS_DISTRO": "humble", "RMW_IMPLEMENTATION":
                                    "rmw_fastrtps_cpp"}) == ("FASTRTPS_DEFAULT_PROFILES_FILE",
                                                             FASTDDS_PROFILE)
    for env, why in [({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, "rmw_cyclonedds_cpp"),
                     ({"FASTDDS_DEFAULT_PROFILES_FILE": "/a.xml"}, "FASTDDS_DEFAULT_PROFILES_FILE is set"),
                     ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/x.xml"}, "FASTRTPS_"),
                     ({"ROS_DISTRO": "dashing"}, "no shared-memory")]:
        variable, reason = fastdds_profile_setting(env)
        assert variable is None and why in reason, (env, reason)


def test_shipped_fastdds_profile_holds_whole_1080p_images_and_keeps_udp():
    """The profile is what setup.cfg ships and what rt-ros2 loads: a default participant profile
    whose shared-memory segment holds two 1080p bgr8 images, with UDPv4 for other hosts."""
    import configparser
    import os
    import xml.etree.ElementTree as ET
    from runtime.ros2_node import FASTDDS_PROFILE
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    assert os.path.basename(FASTDDS_PROFILE) in cfg["options.package_data"]["runtime"]
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(FASTDDS_PROFILE).getroot()
    transports = dict((t.find("d:transport_id", ns).text, t)
                      for t in root.iter("{http://www.eprosima.com}transport_descriptor"))
    kinds = dict((t.find("d:type", ns).text, t) for t in transports.values())
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].find("d:segment_size", ns).text) >= 2 * 1080 * 1920 * 3
    participant = root.find("d:profiles/d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.find("d:rtps/d:userTransports", ns)]
    assert sorted(used) == sorted(transports)
