#!/usr/bin/env python
"""rt-ros2 next to rt-segment: end-to-end FPS and latency on the same engine and frames.

    python benchmarks/ros2_bench.py --engine engines/swiftnet-rn18_int8.onnx
    python benchmarks/ros2_bench.py --engine engines/x.onnx --frames 300 --fps 30 --rounds 3 --json out/ros2.json

One generated drive (``--frames`` at ``--fps``, ``--size`` camera frames) is written to a
video; its decoded frames are what both sides get:

- ``rt-segment --video V`` (file mode: every frame, as fast as it goes, for as long as the
  stream lasts);
- ``rt-segment --video V --realtime`` (the file played at its rate, newest frame only:
  a camera at ``--fps``);
- ``rt-ros2``: this script publishes the same frames on a topic at ``--fps`` (sensor-data
  QoS) and receives ``~/class_map``; the node runs as the real command.

Both commands run as subprocesses with the same ``--threads``, one after the other, in
``--rounds`` rounds (order alternated, medians reported), so drift hits them alike. FPS:
results / (last result - first frame sent or read); latency: rt-segment's capture ->
result, rt-ros2's receive -> publish inside the node (its report) and publish -> received
back here (both DDS hops). Prints a Markdown table; the target is rt-ros2 >= 0.9x the FPS of
rt-segment --realtime (the same newest-frame policy at the same camera rate).
"""
import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic  # noqa: E402
from runtime.sizes import parse_hw  # noqa: E402
from runtime.stats import summarize  # noqa: E402

TARGET_RATIO = 0.9
DOMAIN_ID = 1 + os.getpid() % 100


def log(message):
    sys.stderr.write("[ros2-bench] {}\n".format(message))
    sys.stderr.flush()


def ros_env(fastdds_profile=True):
    """The environment of this script's camera and of the commands (one ROS domain, localhost).

    ``fastdds_profile``: the camera's participant gets rt-ros2's Fast DDS profile, as
    docs/ros2.md tells camera drivers to (on Fast DDS's defaults a 921 KB image rarely arrives
    whole: benchmarks/ros2_transport.py); False: Fast DDS's defaults, whatever the caller's
    environment says."""
    from runtime.ros2_node import FASTDDS_PROFILE_VARIABLES, fastdds_profile_setting
    env = dict(os.environ)
    env.update({"ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", "")})
    if not fastdds_profile:
        for variable in FASTDDS_PROFILE_VARIABLES:
            env.pop(variable, None)
        return env
    variable, path = fastdds_profile_setting(env)
    if variable:
        env[variable] = path
    return env


def write_drive(path, frames, size, fps):
    """The drive as a video, and its frames as decoded from it (what rt-segment reads)."""
    import cv2
    from export.scenes import video_frames
    height, width = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    for frame in video_frames(7, frames, size=size, fps=fps):
        writer.write(frame)
    writer.release()
    cap = cv2.VideoCapture(path)
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    return decoded


def run_segment(engine, video, threads, realtime, folder, duration):
    """rt-segment on the video; file mode is bounded to the stream's ``duration`` (s)."""
    report = os.path.join(folder, "segment.json")
    cmd = [sys.executable, "-m", "runtime.cli.segment", "--engine", engine, "--video", video,
           "--report", report, "-q"]
    if not realtime:
        cmd += ["--duration", str(duration)]
    if threads:
        cmd += ["--threads", str(threads)]
    if realtime:
        cmd.append("--realtime")
    subprocess.run(cmd, cwd=REPO, env=ros_env(), check=True)
    with open(report) as handle:
        data = json.load(handle)
    lat = data["latency_ms"]["capture_to_result"]
    return {"fps": data["fps"]["processed"], "processed": data["frames"]["processed"],
            "dropped": data["frames"]["dropped"], "latency_p50": lat["p50"],
            "latency_p99": lat["p99"], "backend": data["engine"].get("backend")}


class Camera(object):
    """This script's ROS side: a publisher of the frames and a subscriber of the class maps."""

    def __init__(self, context):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        self.node = rclpy.create_node("bench_camera", namespace="/bench", context=context)
        self.pub = self.node.create_publisher(Image, "/bench/camera/image_raw",
                                              qos_profile_sensor_data)
        self.received = {}
        self.node.create_subscription(Image, "/bench/rt_ros2/class_map", self._on_result,
                                      QoSProfile(depth=100))
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._spin)
        self._thread.daemon = True
        self._thread.start()

    def _on_result(self, msg):
        self.received.setdefault(msg.header.frame_id, time.monotonic())

    def _spin(self):
        while not self._done.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def message(self, frame, frame_id):
        from sensor_msgs.msg import Image
        from runtime.ros2_convert import fill_image
        msg = Image()
        msg.header.frame_id = frame_id
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return fill_image(msg, msg.header, frame, "bgr8")

    def close(self):
        self._done.set()
        self._thread.join()
        self.executor.shutdown()
        self.node.destroy_node()


def run_ros2(engine, frames, fps, threads, folder, context):
    """rt-ros2 (the command) on the frames published at ``fps``; FPS and latencies."""
    report = os.path.join(folder, "ros2.json")
    cmd = [sys.executable, "-m", "runtime.cli.ros2", "--report", report, "-q", "--ros-args",
           "-r", "__ns:=/bench", "-r", "image:=/bench/camera/image_raw", "-p", "engine:=" + engine]
    if threads:
        cmd += ["-p", "threads:={}".format(int(threads))]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ros_env())
    camera = Camera(context)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in camera.received:  # discovery and warm-up
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rt-ros2 did not answer (exit code {})".format(proc.poll()))
            camera.pub.publish(camera.message(frames[0], "ready"))
            time.sleep(0.2)
        time.sleep(0.5)
        sent = {}
        start = time.monotonic()
        for i, frame in enumerate(frames):  # a camera at fps: on schedule, never waiting
            delay = start + i / float(fps) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = camera.message(frame, str(i))
            sent[str(i)] = time.monotonic()
            camera.pub.publish(msg)
        last = str(len(frames) - 1)
        deadline = time.monotonic() + 30
        while last not in camera.received and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            camera.close()
    with open(report) as handle:
        data = json.load(handle)
    got = dict((k, t) for k, t in camera.received.items() if k in sent)
    if not got:
        raise RuntimeError("no class map came back")
    round_trip = summarize([(got[k] - sent[k]) * 1e3 for k in got])  # as the node's own figures
    node = data["latency_ms"]["receive_to_publish"]
    return {"fps": len(got) / (max(got.values()) - min(sent.values())), "processed": len(got),
            "dropped": len(frames) - len(got), "latency_p50": node["p50"], "latency_p99": node["p99"],
            "round_trip_p50": round_trip["p50"], "round_trip_p99": round_trip["p99"],
            "backend": data["engine"].get("backend"),
            "node_frames": dict((k, data["frames"].get(k)) for k in
                                ("received", "lost", "processed", "dropped", "published"))}


def _median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(results, frames, size, fps, rounds, engine_info):
    """The Markdown table of ``measure``'s results (``size`` the camera's (H, W))."""
    def ms(value):
        return "{:.1f}".format(value) if value is not None else "-"
    reference = _median(results["rt-segment --realtime"], "fps")
    lines = ["| Runner ({} frames {}x{} at {:g} Hz, {}) | FPS | x rt-segment --realtime | "
             "latency p50 / p99 ms | publish -> back p50 / p99 ms | not processed | "
             "of which lost in transport |".format(frames, size[1], size[0], fps, engine_info),
             "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        fps_value = _median(rows, "fps")
        lost = [r["node_frames"]["lost"] for r in rows if r.get("node_frames")]
        lines.append("| {} | {:.1f} | {:.2f}x | {} / {} | {} / {} | {} | {} |".format(
            name, fps_value, fps_value / reference, ms(_median(rows, "latency_p50")),
            ms(_median(rows, "latency_p99")), ms(_median(rows, "round_trip_p50")),
            ms(_median(rows, "round_trip_p99")), int(round(_median(rows, "dropped"))),
            int(round(statistics.median(lost))) if lost else "-"))
    ros = _median(results["rt-ros2"], "fps")
    lines.append("")
    lines.append("rt-ros2 / rt-segment --realtime FPS: {:.2f}x (target >= {}x: {}). Latency: "
                 "rt-segment capture -> result, rt-ros2 receive -> publish in the node; "
                 "medians of {} round(s).".format(ros / reference, TARGET_RATIO,
                                                 "met" if ros / reference >= TARGET_RATIO
                                                 else "NOT met", rounds))
    return "\n".join(lines)


def measure(engine, frames=300, fps=30.0, size=(480, 640), threads=2, rounds=2):
    """Run the three runners ``rounds`` times (order alternated); returns the results dict
    {runner: [row per round]} and a description of the engine (for ``table``)."""
    import rclpy
    from rclpy.context import Context
    from runtime import manifest as manifest_mod
    engine = os.path.abspath(engine)
    os.environ.update(ros_env())
    context = Context()
    rclpy.init(context=context)
    results = {"rt-segment (file, every frame)": [], "rt-segment --realtime": [], "rt-ros2": []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            video = os.path.join(folder, "drive.mp4")
            decoded = write_drive(video, frames, size, fps)
            log("{} frames {}x{} at {:g} Hz; engine {}".format(len(decoded), size[1], size[0],
                                                              fps, engine))
            for round_index in range(rounds):
                order = ["segment-file", "segment-rt", "ros2"]
                if round_index % 2:
                    order.reverse()
                for name in order:
                    log("round {}: {}".format(round_index + 1, name))
                    if name == "ros2":
                        row = run_ros2(engine, decoded, fps, threads, folder, context)
                        results["rt-ros2"].append(row)
                    else:
                        row = run_segment(engine, video, threads, name == "segment-rt", folder,
                                          len(decoded) / fps)
                        key = ("rt-segment --realtime" if name == "segment-rt"
                               else "rt-segment (file, every frame)")
                        results[key].append(row)
                    log("  {:.1f} FPS, latency p50 {:.1f} ms{}".format(
                        row["fps"], row["latency_p50"],
                        "; node frames {}".format(row["node_frames"]) if "node_frames" in row
                        else ""))
    finally:
        context.try_shutdown()
    engine_info = "{} {} {}, {} threads".format(os.path.basename(engine), manifest_mod.Manifest.load(engine).precision,
                                              results["rt-ros2"][0]["backend"], threads)
    return results, engine_info


def per_round(results):
    return "Per round (FPS): {}.".format("; ".join(
        "{} {}".format(name, ", ".join("{:.1f}".format(r["fps"]) for r in rows))
        for name, rows in results.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", required=True, help="engine (.onnx / .plan) or forecast bundle")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate (default 30)")
    parser.add_argument("--size", type=parse_hw, default=(480, 640), help="camera HxW (480x640)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args(argv)
    if args.json:
        args.json = check_output(args.json, "--json")
    load_start = os.getloadavg()[0]  # a shared machine's load says how far to trust the numbers
    results, engine_info = measure(args.engine, args.frames, args.fps, args.size, args.threads,
                                   args.rounds)
    text = table(results, args.frames, args.size, args.fps, args.rounds, engine_info)
    from runtime.report import host_info
    cpu = host_info().get("cpu") or platform.machine()
    host = "{}, {} cores, Python {}, load average {:.1f} at start, {:.1f} at end".format(
        cpu, os.cpu_count(), platform.python_version(), load_start, os.getloadavg()[0])
    print(text)
    print("\n" + per_round(results))
    print("\nMachine: {}; measured {}.".format(host, time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime())))
    if args.json:
        write_atomic(args.json, {"args": vars(args), "results": results, "host": host},
                     indent=1, default=str)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="ros2_bench"))
