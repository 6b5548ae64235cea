#!/usr/bin/env python
"""A fleet of drives on Ray: wall time with 1 and 2 workers (and one after another, no Ray).

    python benchmarks/fleet_bench.py --engine engines/bench/swiftnet-rn18_fp32.onnx
    python benchmarks/fleet_bench.py --drives 4 --frames 40 --json out/fleet.json --markdown out/fleet.md

``--drives`` generated videos of ``--frames`` frames (``--size``) go through runtime.fleet three
ways, in one run: sequentially in this process, and as Ray tasks on a local cluster on 127.0.0.1
started with ``--num-cpus 1`` and then ``--num-cpus 2`` (one task per CPU: 1 and 2 workers),
every drive with 1 inference thread. Wall time: from the first task submitted to the report
(cluster start-up not included; the workers' engine loading is). Speed-up: 1-worker wall /
2-worker wall. Without ``--engine`` the FP32 swiftnet-rn18 of run_cpu_benchmarks.py is used.
``section()`` is what run_cpu_benchmarks.py would put into BENCHMARKS.md.
"""
import argparse
import datetime
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime import fleet  # noqa: E402
from runtime.cli.common import run_cli, usable_cores  # noqa: E402
from runtime.errors import UserError  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402
from runtime.sizes import parse_hw  # noqa: E402


def log(message):
    sys.stderr.write("[fleet-bench] {}\n".format(message))
    sys.stderr.flush()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRay(object):
    """``ray start --head --block`` on 127.0.0.1 with ``cpus`` CPUs; stopped by its own session id."""

    def __init__(self, cpus):
        self.cpus, self.port = cpus, _free_port()
        self.address = "127.0.0.1:{}".format(self.port)
        self.temp = tempfile.mkdtemp(prefix="rtfb-", dir="/tmp")
        self.process = None

    def __enter__(self):
        ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
        if not os.path.exists(ray_bin):
            raise UserError("Ray is not installed (pip install 'swiftrt[ray]')")
        self.process = subprocess.Popen(
            [ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(self.port), "--num-cpus", str(self.cpus), "--include-dashboard",
             "false", "--disable-usage-stats", "--temp-dir", self.temp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ, PYTHONPATH=REPO))
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise UserError("ray start exited ({})".format(self.process.returncode))
                time.sleep(0.5)
        raise UserError("Ray head not up after 120 s")

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def measure(engine, drives=4, frames=40, size=(256, 512)):
    from export import scenes
    work = tempfile.mkdtemp(prefix="fleet-bench-")
    folder = os.path.join(work, "drives")
    os.makedirs(folder)
    for index in range(drives):
        scenes.write_video(os.path.join(folder, "drive{}.mp4".format(index)), frames, 10.0,
                           100 + index, size)
    fleet_drives = fleet.find_drives([folder])
    rows = []
    load_start = os.getloadavg()[0]
    for label, cpus in (("sequential (no Ray)", None), ("Ray, 1 worker", 1), ("Ray, 2 workers", 2)):
        log(label)
        out = os.path.join(work, "out-{}".format(cpus or 0))
        if cpus is None:
            report = fleet.run_fleet(engine, fleet_drives, out, threads=1, quiet=True)
        else:
            with LocalRay(cpus) as cluster:
                report = fleet.run_fleet(engine, fleet_drives, out, ray_address=cluster.address,
                                         threads=1, quiet=True)
        overall = report["overall"]
        if overall["failed"]:
            raise UserError("{}: {} drives failed: {}".format(label, overall["failed"],
                                                              report["failures"]))
        rows.append({"runner": label, "workers": cpus, "wall_s": overall["wall_s"],
                     "frames": overall["frames"], "fps": overall["fps"]})
    shutil.rmtree(work, ignore_errors=True)
    return {"engine": os.path.relpath(engine, REPO) if engine.startswith(REPO) else engine,
            "drives": drives, "frames_per_drive": frames, "size": list(size), "rows": rows,
            "speedup_1_to_2": rows[1]["wall_s"] / rows[2]["wall_s"],
            "load_average": [load_start, os.getloadavg()[0]],
            "machine": "{} ({}, {} usable cores)".format(platform.node() or "?",
                                                         platform.processor() or platform.machine(),
                                                         usable_cores()),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def section(data):
    lines = ["## A fleet of drives on Ray: 1 -> 2 workers", "",
             "`benchmarks/fleet_bench.py` ({}, {}): engine `{}`, {} generated drives of {} frames "
             "({}x{}), one task per drive, 1 inference thread each; Ray cluster on 127.0.0.1 "
             "(`ray start --num-cpus 1`, then `2`). 1-minute load average {:.1f} at the start, "
             "{:.1f} at the end (shared machine: compare rows of this run only).".format(
                 data["machine"], data["created"], data["engine"], data["drives"],
                 data["frames_per_drive"], data["size"][1], data["size"][0],
                 data["load_average"][0], data["load_average"][1]), "",
             "| Runner | Wall (s) | Frames | Frames/s |", "|---|---|---|---|"]
    for row in data["rows"]:
        lines.append("| {} | {:.1f} | {} | {:.1f} |".format(row["runner"], row["wall_s"],
                                                           row["frames"], row["fps"]))
    lines += ["", "Speed-up 1 -> 2 workers: {:.2f}x.".format(data["speedup_1_to_2"])]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", help="engine (default: run_cpu_benchmarks.py's FP32 swiftnet-rn18)")
    parser.add_argument("--drives", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per drive")
    parser.add_argument("--size", default="256x512", help="frame HxW (default 256x512)")
    parser.add_argument("--json", help="write the results as JSON")
    parser.add_argument("--markdown", help="write the Markdown section")
    args = parser.parse_args(argv)
    if args.json:
        args.json = check_output(args.json, "--json")
    if args.markdown:
        args.markdown = check_output(args.markdown, "--markdown", others=[("--json", args.json)])
    if not 2 <= args.drives <= 64 or not 1 <= args.frames <= 10000:
        raise UserError("--drives must be 2..64 and --frames 1..10000")
    engine = args.engine
    if engine is None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from run_cpu_benchmarks import export_fp32
        engine = export_fp32("swiftnet-rn18")[0]
    data = measure(engine, args.drives, args.frames, parse_hw(args.size))
    text = section(data)
    print(text)
    if args.json:
        write_atomic(args.json, data, indent=2)
    if args.markdown:
        write_text_atomic(args.markdown, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="fleet_bench"))
