#!/usr/bin/env python
"""The core's ONNX Runtime path against the Python engine's, same artifacts and threads, one rt-bench run.

    python benchmarks/core_vs_python.py                       # prints the Markdown section
    python benchmarks/core_vs_python.py --threads 2 --iterations 200 --output out/core.md --json out/core.json

Issue 26 item 6: libswiftrt's ONNX Runtime backend must be within 2 % of the Python engine's ONNX
Runtime path on the same artifact and threads, FP32 and INT8. One rt-bench run (runtime.bench_run.run,
the code of rt-bench: runners interleaved in rounds) on the demo checkpoint's FP32 export at 256x512 and
its CPU-flavor INT8 export (the engines of benchmarks/run_cpu_benchmarks.py, engines/bench/), each
with ``--backend onnxruntime`` (libswiftrt) and ``--backend python-onnxruntime`` (the Python engine, kept
for this comparison while it exists). What one call includes differs by design and is printed per row:
the core takes a BGR frame of the network's size and lays it out itself, the Python runner is fed the
prepared tensor (rt-bench times engine calls without host preprocessing).

Needs ``make native-lib`` first (with the ONNX Runtime backend built in).
"""
import argparse
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402

ARCH = "swiftnet-rn18"
TARGET = 0.02  # the core within 2 % of the Python path
BACKENDS = ("onnxruntime", "python-onnxruntime")


def engines():
    """[(label, path)]: FP32 and CPU-flavor INT8 of the demo checkpoint (made when missing)."""
    from run_cpu_benchmarks import export_fp32, int8_engine
    fp32, _ = export_fp32(ARCH)
    return [("FP32", fp32), ("INT8", int8_engine(ARCH, fp32))]


def measure(threads, iterations, rounds):
    """The rt-bench report of one run: each engine on the core and on the Python engine."""
    from runtime import bench_run
    from runtime import libswiftrt
    if "onnxruntime" not in libswiftrt.version().split("backends:")[1]:
        raise SystemExit("libswiftrt was built without its ONNX Runtime backend (make native-lib)")
    made = engines()
    paths = [p for _, p in made for _ in BACKENDS]
    backends = [b for _ in made for b in BACKENDS]
    report, _ = bench_run.run(paths, bench_run.BenchOptions(
        backends=backends, threads=threads, iterations=iterations, rounds=rounds, quiet=True,
        command=["benchmarks/core_vs_python.py"]))
    labels = [label for label, _ in made for _ in BACKENDS]
    return {"report": report, "labels": labels, "backends": backends, "threads": threads,
            "iterations": iterations, "rounds": rounds,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": "{} ({} CPUs), {}".format(platform.processor() or platform.machine(),
                                                 os.cpu_count(), platform.platform())}


def _load(value):
    return "{:.1f}".format(value[0]) if value else "unknown"


def render(data):
    runners = data["report"]["runners"]
    env = data["report"].get("environment") or {}
    lines = ["## The core's ONNX Runtime backend vs the Python engine's ONNX Runtime path", "",
             "Machine: {}; {}; {} threads, {} timed calls per runner in {} interleaved rounds, one "
             "rt-bench run (benchmarks/core_vs_python.py); load average {} at the start, {} at the "
             "end.".format(data["machine"], data["date"], data["threads"], data["iterations"],
                           data["rounds"], _load(env.get("load_average", {}).get("start")),
                           _load(env.get("load_average", {}).get("end"))),
             "", "| engine | runs on | mean ms | median ms | p90 ms | what one call includes |",
             "|---|---|---|---|---|---|"]
    by = {}
    for label, backend, r in zip(data["labels"], data["backends"], runners):
        lat = r["latency_ms"]
        by[(label, backend)] = lat
        side = "libswiftrt (ONNX Runtime C API)" if backend == "onnxruntime" else "Python engine"
        lines.append("| {} `{}` | {} | {:.2f} | {:.2f} | {:.2f} | {} |".format(
            label, r["name"].split(" [")[0], side, lat["mean"], lat["p50"], lat["p90"],
            r["includes"]))
    lines += ["", "| precision | core / Python, mean | core / Python, median | within {:.0%} (mean and "
              "median) |".format(TARGET), "|---|---|---|---|"]
    for label in sorted(set(data["labels"]), key=data["labels"].index):
        core, py = by[(label, "onnxruntime")], by[(label, "python-onnxruntime")]
        ratio, median = core["mean"] / py["mean"], core["p50"] / py["p50"]
        lines.append("| {} | {:.3f} | {:.3f} | {} |".format(
            label, ratio, median, "yes" if max(ratio, median) <= 1 + TARGET else "NO"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--output", help="write the Markdown section here")
    parser.add_argument("--json", help="write the rt-bench report and labels as JSON here")
    args = parser.parse_args(argv)
    outputs = [(flag, check_output(path, flag)) for flag, path in
               (("--output", args.output), ("--json", args.json)) if path]
    data = measure(args.threads, args.iterations, args.rounds)
    text = render(data)
    sys.stdout.write(text)
    for flag, path in outputs:
        if flag == "--output":
            write_text_atomic(path, text)
        else:
            write_atomic(path, data, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="core_vs_python"))
