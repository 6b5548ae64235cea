#!/usr/bin/env python
"""Triton serving next to rt-segment: throughput and latency on the same engine and frames.

    python benchmarks/triton_bench.py --engine engines/bench/swiftnet-rn18_fp32.onnx
    python benchmarks/triton_bench.py --frames 60 --json out/triton.json --markdown out/triton.md

One set of generated road scenes (``--frames`` PNGs at ``--size``) is what both sides get:

- ``rt-segment --images DIR`` (every frame, as fast as it goes) with ``--threads`` threads;
- Triton (the nvidia-pytriton wheel's tritonserver on 127.0.0.1, benchmarks' local server:
  runtime/serving/triton_server.py) serving rt-triton's repository of the same engine,
  configured two ways: 1 instance with ``--threads`` threads, and ``--threads`` instances of 1
  thread each; for each, 1 and 4 concurrent gRPC clients send the frames (uint8, one frame per
  request) and wait for the class maps.

Throughput: frames / wall time of the run. Latency: rt-segment's preprocess + inference +
postprocess per frame (mean of the stage means; its capture-to-result includes queueing in
file mode) and Triton's request round trip as the client sees it (p50, p99). Without a
``--engine`` the FP32 swiftnet-rn18 of run_cpu_benchmarks.py is used (exported if missing).
``section()`` is what run_cpu_benchmarks.py puts into BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.cli.common import run_cli, usable_cores  # noqa: E402
from runtime.errors import UserError  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402
from runtime.sizes import parse_hw  # noqa: E402
from runtime.stats import summarize  # noqa: E402

TRITON_ENV = os.environ.get("SWIFTRT_TRITON_PYTHON_ENV", os.path.join(REPO, ".venv-triton"))


def log(message):
    sys.stderr.write("[triton-bench] {}\n".format(message))
    sys.stderr.flush()


def write_frames(folder, count, size):
    import cv2
    from export.scenes import render_scene
    os.makedirs(folder)
    for index in range(count):
        cv2.imwrite(os.path.join(folder, "{:04d}.png".format(index)),
                    render_scene(seed=11, index=index, size=size)[0])
    return [cv2.imread(os.path.join(folder, "{:04d}.png".format(i))) for i in range(count)]


def measure_rt_segment(engine, folder, threads, work):
    report = os.path.join(work, "rt-segment.json")
    cmd = [sys.executable, "-m", "runtime.cli.segment", "--engine", engine, "--images", folder,
           "--threads", str(threads), "--report", report, "--quiet"]
    subprocess.run(cmd, check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    with open(report) as handle:
        data = json.load(handle)
    stages = data["latency_ms"]
    per_frame = sum(stages[s]["mean"] for s in ("preprocess", "inference", "postprocess"))
    return {"fps": data["fps"]["processed"], "frames": data["frames"]["processed"],
            "latency_ms": {"mean": per_frame, "p50": None, "p99": None},
            "capture_to_result_p50_ms": stages["capture_to_result"]["p50"]}


def _client_run(url, model, frames, clients):
    """``clients`` gRPC clients share ``frames`` (each sends every clients-th); returns stats."""
    import tritonclient.grpc as grpc
    latencies, errors = [], []

    def client(index):
        connection = grpc.InferenceServerClient(url)
        try:
            for frame in frames[index::clients]:
                inp = grpc.InferInput("FRAME", [1] + list(frame.shape), "UINT8")
                inp.set_data_from_numpy(frame[None])
                start = time.perf_counter()
                connection.infer(model, [inp]).as_numpy("class_map")
                latencies.append((time.perf_counter() - start) * 1e3)
        except Exception as exc:  # reported: a benchmark with failed requests is no benchmark
            errors.append(str(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise UserError("Triton requests failed: {}".format(errors[0]))
    stats = summarize(latencies)
    return {"fps": len(latencies) / wall, "frames": len(latencies),
            "latency_ms": {"mean": stats["mean"], "p50": stats["p50"], "p99": stats["p99"]}}


def measure_triton(engine, frames, threads, work, client_counts=(1, 4)):
    from runtime.serving import triton
    from runtime.serving.triton_server import LocalTritonServer
    rows = []
    layouts = [(1, threads)] + ([(threads, 1)] if threads > 1 else [])
    for instances, per_instance in layouts:
        repo = os.path.join(work, "models-{}x{}".format(instances, per_instance))
        triton.write_repository(engine, repo, name="seg", instances=instances,
                                threads=per_instance, python_path=REPO)
        with LocalTritonServer(repo, os.path.join(work, "server-{}".format(instances)),
                               TRITON_ENV) as server:
            _client_run(server.grpc_url, "seg", frames[:4], 1)  # warm-up: every instance loaded
            for clients in client_counts:
                log("Triton: {} instance(s) x {} thread(s), {} client(s)".format(
                    instances, per_instance, clients))
                row = _client_run(server.grpc_url, "seg", frames, clients)
                row.update(instances=instances, threads=per_instance, clients=clients)
                rows.append(row)
    return rows


def measure(engine, frames_count=60, size=(480, 640), threads=None):
    threads = threads or usable_cores()
    load_start = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="triton-bench-")
    folder = os.path.join(work, "frames")
    frames = write_frames(folder, frames_count, size)
    log("rt-segment --images ({} frames, {} threads)".format(frames_count, threads))
    segment = measure_rt_segment(engine, folder, threads, work)
    rows = measure_triton(engine, frames, threads, work)
    return {"engine": os.path.relpath(engine, REPO) if engine.startswith(REPO) else engine,
            "frames": frames_count, "size": list(size), "threads": threads,
            "rt_segment": segment, "triton": rows,
            "load_average": [load_start, os.getloadavg()[0]],
            "machine": "{} ({}, {} usable cores)".format(platform.node() or "?",
                                                         platform.processor() or platform.machine(),
                                                         usable_cores()),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _f(value, digits=1):
    return "–" if value is None else "{:.{}f}".format(value, digits)


def table(data):
    seg = data["rt_segment"]
    lines = ["| Server | Instances x threads | Clients | Frames/s | vs rt-segment | "
             "Latency mean (ms) | p50 | p99 |", "|---|---|---|---|---|---|---|---|",
             "| rt-segment --images | 1 x {} | – | {} | 1.00 | {} | – | – |".format(
                 data["threads"], _f(seg["fps"]), _f(seg["latency_ms"]["mean"]))]
    for row in data["triton"]:
        lines.append("| Triton (Python backend, gRPC) | {} x {} | {} | {} | {:.2f} | {} | {} | {} |"
                     .format(row["instances"], row["threads"], row["clients"], _f(row["fps"]),
                             row["fps"] / seg["fps"], _f(row["latency_ms"]["mean"]),
                             _f(row["latency_ms"]["p50"]), _f(row["latency_ms"]["p99"])))
    return "\n".join(lines)


def section(data):
    """The BENCHMARKS.md section (Markdown) of ``measure``'s results."""
    return "\n".join([
        "## Triton: rt-triton's repository served by tritonserver, next to rt-segment", "",
        "`benchmarks/triton_bench.py` ({}, {}): engine `{}`, {} generated {}x{} frames (PNG), "
        "the same for both. rt-segment reads them from a folder; Triton (the nvidia-pytriton "
        "wheel's tritonserver 2.51, CPU only, on 127.0.0.1) gets them as uint8 requests, one "
        "frame each, from gRPC clients in this process. rt-segment's latency: preprocess + "
        "inference + postprocess per frame; Triton's: the request round trip the client sees. "
        "1-minute load average {:.1f} at the start, {:.1f} at the end (the machine is shared: "
        "compare rows of this run only).".format(
            data["machine"], data["created"], data["engine"], data["frames"], data["size"][1],
            data["size"][0], data["load_average"][0], data["load_average"][1]), "", table(data)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", help="engine (default: run_cpu_benchmarks.py's FP32 swiftnet-rn18)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="480x640", help="frame HxW (default 480x640)")
    parser.add_argument("--threads", type=int, help="default: the usable cores")
    parser.add_argument("--json", help="write the results as JSON")
    parser.add_argument("--markdown", help="write the Markdown section")
    args = parser.parse_args(argv)
    if args.json:
        args.json = check_output(args.json, "--json")
    if args.markdown:
        args.markdown = check_output(args.markdown, "--markdown", others=[("--json", args.json)])
    engine = args.engine
    if engine is None:
        from run_cpu_benchmarks import export_fp32
        engine = export_fp32("swiftnet-rn18")[0]
    data = measure(engine, args.frames, parse_hw(args.size), args.threads)
    text = section(data)
    print(text)
    if args.json:
        write_atomic(args.json, data, indent=2)
    if args.markdown:
        write_text_atomic(args.markdown, text + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(run_cli(main, prog="triton_bench"))
