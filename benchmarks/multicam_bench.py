#!/usr/bin/env python
"""Several cameras: one batched rt-segment process vs one process per camera.

    python benchmarks/multicam_bench.py                       # prints the Markdown section
    python benchmarks/multicam_bench.py --cameras 1,2,4 --duration 20 --json out/multicam.json

Cameras: generated 640x480 drives (export.scenes.write_video, one seed per camera) played at
30 Hz with the live drop policy (rt-segment --realtime: a frame the engine has not taken when
the next arrives is dropped, as with a camera). The engine: the demo network (swiftnet-rn18,
untrained weights: the arithmetic is the same) exported at --size, ONNX Runtime on the CPU,
--threads T in every process. For N cameras:

- batched: one `rt-segment --video d0 ... --video dN-1 --realtime` on a batch-N export
  (rt-export --batch N): one inference per cycle, one copy of the weights;
- separate: N `rt-segment --video di --realtime` processes at once on the batch-1 export.

Per configuration: processed frames per second per camera (mean over cameras), capture-to-
result latency p50/p99 (ms, the worst camera), CPU seconds per second of wall time (all
processes, start-up and engine loading included), frames processed per CPU second (the work
per frame, which a shared machine's scheduler blurs less than FPS) and resident memory (MB,
peak RSS summed over the processes, VmHWM sampled from /proc), from each run's report and rusage.
Machine, load and date are printed with the table; ``--from-json`` reprints a saved run.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FPS = 30.0
FRAME_SIZE = (480, 640)


def _export(folder, size, batch):
    from export.api import export
    path = os.path.join(folder, "swiftnet-rn18_b{}.onnx".format(batch))
    if not os.path.exists(path):
        export("swiftnet-rn18", None, size, path, parity_images=2, log=lambda m: None, batch=batch)
    return path


def _drives(folder, count, seconds):
    from export.scenes import write_video
    paths = []
    for index in range(count):
        path = os.path.join(folder, "drive{}.mp4".format(index))
        if not os.path.exists(path):
            write_video(path, frames=int(seconds * FPS) + 30, fps=FPS, seed=100 + index,
                        size=FRAME_SIZE)
        paths.append(path)
    return paths


def _peak_rss_kib(pid):
    """The process's own peak RSS (VmHWM of its current address space), KiB; None once it is gone.

    Not rusage's ru_maxrss: Linux carries the parent's peak RSS across fork and exec into it, so
    every rt-segment started from this script (torch loaded for the exports) would show ours."""
    try:
        with open("/proc/{}/status".format(pid)) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (IOError, OSError, ValueError):
        return None
    return None


def _run(processes, duration):
    """Start every argv at once; wait; CPU time (os.wait4) and peak RSS (VmHWM, sampled) per process."""
    env = dict(os.environ, PYTHONPATH=REPO)
    started = time.monotonic()
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for argv in processes]
    peaks = dict((proc.pid, 0) for proc in procs)
    usage = {}
    while len(usage) < len(procs):
        for proc in procs:
            if proc.pid in usage:
                continue
            peak = _peak_rss_kib(proc.pid)
            if peak:
                peaks[proc.pid] = max(peaks[proc.pid], peak)
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == 0:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(
                os, "waitstatus_to_exitcode") else status >> 8
            usage[proc.pid] = rusage
            if proc.returncode != 0:
                raise SystemExit("rt-segment failed: {}".format(proc.stderr.read().decode()[-2000:]))
        time.sleep(0.1)
    wall = time.monotonic() - started
    cpu = sum(u.ru_utime + u.ru_stime for u in usage.values())
    rss_mb = sum(peaks.values()) / 1024.0
    return wall, cpu, rss_mb


def _segment(engine, videos, report, duration, threads):
    argv = [sys.executable, "-m", "runtime.cli.segment", "-e", engine, "--realtime",
            "--duration", str(duration), "--threads", str(threads), "--report", report, "-q"]
    for video in videos:
        argv += ["--video", video]
    return argv


def _cameras_of(report_path):
    data = json.load(open(report_path))
    if "cameras" in data:
        return [(c["fps"], c["latency_ms"]["capture_to_result"]) for c in data["cameras"]]
    return [(data["fps"]["processed"], data["latency_ms"]["capture_to_result"])]


def measure(work, count, duration, threads, size):
    videos = _drives(work, count, duration)
    rows = []
    for mode in ("batched", "separate"):
        if mode == "batched":
            engine = _export(work, size, count)
            reports = [os.path.join(work, "batched{}.json".format(count))]
            argvs = [_segment(engine, videos, reports[0], duration, threads)]
        else:
            engine = _export(work, size, 1)
            reports = [os.path.join(work, "separate{}_{}.json".format(count, i))
                       for i in range(count)]
            argvs = [_segment(engine, [v], r, duration, threads) for v, r in zip(videos, reports)]
        wall, cpu, rss = _run(argvs, duration)
        cams = [cam for r in reports for cam in _cameras_of(r)]
        rows.append({"cameras": count, "mode": mode, "processes": len(argvs),
                     "fps_per_camera": sum(f for f, _ in cams) / len(cams),
                     "p50_ms": max(l["p50"] for _, l in cams if l["p50"] is not None),
                     "p99_ms": max(l["p99"] for _, l in cams if l["p99"] is not None),
                     "cpu_per_s": cpu / wall, "rss_mb": rss, "wall_s": wall})
    return rows


def markdown(rows, info):
    lines = ["Cameras: {}x{} at {:g} Hz (generated drives, rt-segment --realtime); engine "
             "swiftnet-rn18 {}x{} ONNX Runtime CPU, --threads {}; {} for {:g} s each. Machine: {}, "
             "{} CPUs, load average at start {}; {}.".format(
                 FRAME_SIZE[1], FRAME_SIZE[0], FPS, info["size"][0], info["size"][1],
                 info["threads"], "runs", info["duration"], info["machine"], info["cpus"],
                 info["load"], info["date"]),
             "",
             "| cameras | mode | processes | FPS per camera | p50 ms | p99 ms | CPU s/s | "
             "frames per CPU s | RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_cpu = r["fps_per_camera"] * r["cameras"] / r["cpu_per_s"] if r["cpu_per_s"] else 0.0
        lines.append("| {cameras} | {mode} | {processes} | {fps_per_camera:.1f} | {p50_ms:.0f} | "
                     "{p99_ms:.0f} | {cpu_per_s:.2f} | {per_cpu:.1f} | {rss_mb:.0f} |".format(
                         per_cpu=per_cpu, **r))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4", help="camera counts (default 1,2,4)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run")
    parser.add_argument("--threads", type=int, default=2, help="inference threads per process")
    parser.add_argument("--size", default="256x512", help="network input HxW (default 256x512)")
    parser.add_argument("--work", help="folder for exports and drives (default: a temporary one)")
    parser.add_argument("--json", help="write the rows here too")
    parser.add_argument("--from-json", metavar="FILE",
                        help="print the table of an earlier run's --json (no measurement)")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as handle:
            data = json.load(handle)
        print(markdown(data["rows"], data["info"]))
        return 0
    size = tuple(int(v) for v in args.size.lower().split("x"))
    work = args.work or tempfile.mkdtemp(prefix="multicam-")
    os.makedirs(work, exist_ok=True)
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load": "{:.1f}".format(os.getloadavg()[0]), "threads": args.threads,
            "duration": args.duration, "size": size,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    rows = []
    for count in [int(c) for c in args.cameras.split(",")]:
        rows.extend(measure(work, count, args.duration, args.threads, size))
    text = markdown(rows, info)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
