#!/usr/bin/env python
"""The core's ONNX Runtime path against a plain Python ONNX Runtime path, same artifacts and threads.

    python benchmarks/core_vs_python.py                       # prints the Markdown section
    python benchmarks/core_vs_python.py --threads 2 --iterations 200 --output out/core.md --json out/core.json

Issue 26 item 6: libswiftrt's ONNX Runtime backend must be within 2 % of the Python ONNX Runtime
path it replaced, on the same artifact and threads, FP32 and INT8. The Python engine is gone, so its
path is rebuilt here, self-contained: an ``onnxruntime.InferenceSession`` with the options the
Python engine set (CPU provider, ``threads`` intra-op threads, one inter-op thread, all graph
optimizations, spinning on) and the manifest's preprocessing in numpy/OpenCV (colour order, cast,
normalization when not in the graph, layout), argmax of logits when the graph has no class map.
Both sides take the same BGR frame of the network's size and give a class map; they run
interleaved in rounds by rt-bench's measurement code (runtime.bench.measure) on the demo
checkpoint's FP32 export at 256x512 and its CPU-flavor INT8 export (the engines of
benchmarks/run_cpu_benchmarks.py, engines/bench/).

Needs ``make native-lib`` first (with the ONNX Runtime backend built in).
"""
import argparse
import os
import platform
import sys
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from runtime import bench  # noqa: E402
from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402

ARCH = "swiftnet-rn18"
TARGET = 0.02  # the core within 2 % of the Python path
SIDES = ("core", "python")


def engines():
    """[(label, path)]: FP32 and CPU-flavor INT8 of the demo checkpoint (made when missing)."""
    from run_cpu_benchmarks import export_fp32, int8_engine
    fp32, _ = export_fp32(ARCH)
    return [("FP32", fp32), ("INT8", int8_engine(ARCH, fp32))]


class PythonOnnxRuntime(bench.Runner):
    """The Python ONNX Runtime path: BGR frame -> numpy/OpenCV preprocessing as the manifest says
    -> InferenceSession.run -> class map (argmax of logits on the host when the graph has none)."""

    kind = "engine"

    def __init__(self, path, frame, threads, name):
        import onnxruntime as ort
        from runtime.manifest import Manifest
        manifest = Manifest.load(path)
        manifest.verify_artifact(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.spec = manifest.input
        out = manifest.output("class_map") or manifest.output("logits")
        self.output, self.logits = out.name, out.meaning == "logits"
        self.frame, self.name = frame, name
        self.version = ort.__version__
        self.includes = ("Python: numpy/OpenCV preprocessing of a BGR frame of the network's size "
                         "({} {}{}), onnxruntime {} InferenceSession.run (CPU), {}".format(
                             self.spec.dtype, self.spec.layout,
                             "" if self.spec.normalization["in_graph"] else ", normalized on the host",
                             self.version, "argmax on the host" if self.logits else "class map out"))

    def preprocess(self, frame):
        spec = self.spec
        height, width = spec.size
        if frame.shape[:2] != (height, width):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        if spec.color_order == "RGB":
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        norm = spec.normalization
        if norm["in_graph"]:
            tensor = frame.astype(spec.dtype, copy=False)
        else:
            rgb = frame if spec.color_order == "RGB" else frame[..., ::-1]
            tensor = ((rgb.astype(np.float32) * float(norm["scale"]) - np.float32(norm["mean"]))
                      / np.float32(norm["std"]))
            if spec.color_order == "BGR":
                tensor = tensor[..., ::-1]
            tensor = tensor.astype(spec.dtype, copy=False)
        if spec.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis])

    def run_once(self):
        out = self.session.run([self.output], {self.spec.name: self.preprocess(self.frame)})[0][0]
        if self.logits:
            out = np.argmax(out, axis=0)
        out.astype(np.uint8, copy=False)
        return None

    def describe(self):
        return {"backend": "python-onnxruntime", "version": self.version,
                "providers": self.session.get_providers()}


def measure(threads, iterations, rounds, warmup=None):
    """One interleaved measurement: each engine on the core (ONNX Runtime backend) and on the
    Python path, the same frame for both."""
    from runtime import libswiftrt, open_engine
    if "onnxruntime" not in libswiftrt.version().split("backends:")[1]:
        raise SystemExit("libswiftrt was built without its ONNX Runtime backend (make native-lib)")
    load_start = bench.load_average()
    opened, runners, labels = [], [], []
    try:
        for label, path in engines():
            core = open_engine(path, backend="onnxruntime", threads=threads)
            opened.append(core)
            name = os.path.basename(path)
            runners.append(bench.EngineRunner(core, name=name + " [core]"))
            runners.append(PythonOnnxRuntime(path, core.dummy_input(), threads, name + " [python]"))
            labels += [label, label]
        m = bench.measure(runners, warmup_iters=warmup, iterations=iterations, rounds=rounds)
        entries, warnings = bench.results(m)
    finally:
        for engine in opened:
            engine.close()
    env = bench.environment(threads, entries, load_start=load_start)
    return {"report": {"runners": entries, "warnings": warnings, "environment": env},
            "labels": labels, "sides": list(SIDES) * (len(labels) // 2), "threads": threads,
            "iterations": iterations, "rounds": rounds,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": "{} ({} CPUs), {}".format(platform.processor() or platform.machine(),
                                                 os.cpu_count(), platform.platform())}


def _load(value):
    return "{:.1f}".format(value[0]) if value else "unknown"


def render(data):
    runners = data["report"]["runners"]
    env = data["report"].get("environment") or {}
    lines = ["## The core's ONNX Runtime backend vs the Python ONNX Runtime path", "",
             "Machine: {}; {}; {} threads, {} timed calls per runner in {} interleaved rounds "
             "(rt-bench's measurement, benchmarks/core_vs_python.py); load average {} at the start, {} "
             "at the end.".format(data["machine"], data["date"], data["threads"], data["iterations"],
                           data["rounds"], _load(env.get("load_average", {}).get("start")),
                           _load(env.get("load_average", {}).get("end"))),
             "", "| engine | runs on | mean ms | median ms | p90 ms | what one call includes |",
             "|---|---|---|---|---|---|"]
    by = {}
    for label, side, r in zip(data["labels"], data["sides"], runners):
        lat = r["latency_ms"]
        by[(label, side)] = lat
        runs_on = "libswiftrt (ONNX Runtime C API)" if side == "core" else "Python (onnxruntime wheel)"
        lines.append("| {} `{}` | {} | {:.2f} | {:.2f} | {:.2f} | {} |".format(
            label, r["name"].split(" [")[0], runs_on, lat["mean"], lat["p50"], lat["p90"],
            r["includes"]))
    lines += ["", "| precision | core / Python, mean | core / Python, median | within {:.0%} (mean and "
              "median) |".format(TARGET), "|---|---|---|---|"]
    for label in sorted(set(data["labels"]), key=data["labels"].index):
        core, py = by[(label, "core")], by[(label, "python")]
        ratio, median = core["mean"] / py["mean"], core["p50"] / py["p50"]
        lines.append("| {} | {:.3f} | {:.3f} | {} |".format(
            label, ratio, median, "yes" if max(ratio, median) <= 1 + TARGET else "NO"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, help="untimed calls per runner first (default: rt-bench's)")
    parser.add_argument("--output", help="write the Markdown section here")
    parser.add_argument("--json", help="write the measured runners and labels as JSON here")
    args = parser.parse_args(argv)
    outputs = [(flag, check_output(path, flag)) for flag, path in
               (("--output", args.output), ("--json", args.json)) if path]
    data = measure(args.threads, args.iterations, args.rounds, args.warmup)
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
