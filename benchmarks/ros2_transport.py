#!/usr/bin/env python
"""How many camera images reach another process over Fast DDS: its defaults vs rt-ros2's profile.

    python benchmarks/ros2_transport.py
    python benchmarks/ros2_transport.py --sizes 480x640 1080x1920 --frames 150 --fps 30
    python benchmarks/ros2_transport.py --sizes 480x640 --cameras defaults large_data profile

A camera process publishes ``--frames`` bgr8 images at ``--fps`` with sensor-data QoS (best
effort), as camera drivers do; a subscriber process (sensor-data QoS, participant on
runtime/ros2_fastdds.xml as rt-ros2's is) counts what arrives. Camera configurations
(``--cameras``): Fast DDS's defaults (a 512 KB shared-memory segment), ``large_data``
(``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``, Fast DDS's own mode for large samples) and the
shipped profile (16 MB). Nothing else runs: this measures the transport alone, not the node.
Prints a Markdown table.
"""
import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ros2_bench import ros_env  # noqa: E402  (one ROS domain, localhost, the profile or not)

from runtime.sizes import parse_hw  # noqa: E402

TOPIC = "/transport_bench/image_raw"
SETTLE_S = 1.0     # after the first match, before the first frame


def publish(frames, fps, height, width, topic=TOPIC):
    """Camera role: wait for the subscriber, publish the frames on schedule, print a JSON line
    (also tests/test_ros2.py's camera on Fast DDS's defaults: a camera driver's process)."""
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from runtime.ros2_convert import fill_image
    rclpy.init()
    node = rclpy.create_node("transport_bench_camera")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("no subscriber matched in 60 s")
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    frame = np.random.RandomState(0).randint(0, 256, (height, width, 3)).astype(np.uint8)
    start = time.monotonic()
    for i in range(frames):
        delay = start + i / float(fps) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = Image()
        msg.header.frame_id = str(i)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(fill_image(msg, msg.header, frame, "bgr8"))
    late = time.monotonic() - start - (frames - 1) / float(fps)
    print(json.dumps({"published": frames, "late_s": late}))
    time.sleep(1.0)  # let the last frames go before the participant leaves
    node.destroy_node()
    rclpy.shutdown()


def subscribe(frames):
    """Subscriber role: count frames until all came or SIGTERM (the camera is done), print JSON."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("transport_bench_subscriber")
    got = set()
    node.create_subscription(Image, TOPIC, lambda msg: got.add(msg.header.frame_id),
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(True))
    while not done and len(got) < frames:
        executor.spin_once(timeout_sec=0.05)
    print(json.dumps({"received": len(got)}))
    node.destroy_node()
    rclpy.shutdown()


CAMERAS = {  # --cameras: name -> (column title, uses the profile, extra environment)
    "defaults": ("camera on Fast DDS defaults", False, {}),
    "large_data": ("camera on FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA", False,
                   {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
    "profile": ("camera on runtime/ros2_fastdds.xml", True, {}),
}


def measure(size, frames, fps, camera="profile"):
    """Received / published for one camera configuration (the subscriber has the profile)."""
    height, width = size
    script = os.path.abspath(__file__)
    common = ["--frames", str(frames), "--fps", str(fps)]
    sub = subprocess.Popen([sys.executable, script, "--role", "sub"] + common,
                           env=ros_env(True), stdout=subprocess.PIPE, universal_newlines=True)
    try:
        _, profile, extra = CAMERAS[camera]
        env = ros_env(profile)
        env.update(extra)
        pub = subprocess.run([sys.executable, script, "--role", "pub", "--sizes",
                              "{}x{}".format(height, width)] + common,
                             env=env, stdout=subprocess.PIPE,
                             universal_newlines=True, check=True, timeout=180)
        if sub.poll() is None:
            sub.send_signal(signal.SIGTERM)  # the camera is done (it waited 1 s after the last frame)
        out, _ = sub.communicate(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
    published = json.loads(pub.stdout.strip().splitlines()[-1])
    received = json.loads(out.strip().splitlines()[-1])["received"]
    return {"published": published["published"], "received": received,
            "late_s": published["late_s"]}


def table(sizes, frames=150, fps=30.0, cameras=("defaults", "profile")):
    """Measure every size with each camera configuration; a Markdown table and the machine."""
    from runtime.report import host_info
    lines = ["| Camera image (bgr8, {} frames at {:g} Hz) | MB | {} |".format(
                 frames, fps, " | ".join(CAMERAS[c][0] for c in cameras)),
             "|---|---|" + "---|" * len(cameras)]
    for size in sizes:
        row = []
        for camera in cameras:
            result = measure(size, frames, fps, camera)
            row.append("{} / {} received ({:.0f} %)".format(
                result["received"], result["published"],
                100.0 * result["received"] / result["published"]))
            sys.stderr.write("[ros2-transport] {}x{} camera={}: {}\n".format(
                size[1], size[0], camera, result))
        lines.append("| {}x{} | {:.2f} | {} |".format(
            size[1], size[0], size[0] * size[1] * 3 / 1e6, " | ".join(row)))
    lines.append("")
    lines.append("Subscriber: sensor-data QoS, participant on the profile (as rt-ros2's). Machine: "
                 "{}, {} cores, Python {}; measured {}.".format(
                     host_info().get("cpu") or platform.machine(), os.cpu_count(),
                     platform.python_version(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=parse_hw,
                        default=[(480, 640), (720, 1280), (1080, 1920)], help="HxW (several)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--cameras", nargs="+", choices=sorted(CAMERAS),
                        default=["defaults", "profile"], help="camera configurations to compare")
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=TOPIC, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        return publish(args.frames, args.fps, args.sizes[0][0], args.sizes[0][1], args.topic)
    if args.role == "sub":
        return subscribe(args.frames)
    print(table(args.sizes, args.frames, args.fps, args.cameras))


if __name__ == "__main__":
    main()
