#!/usr/bin/env python
"""The native core's per-frame overhead over the bare OpenVINO inference call, and rt-bench rows.

    python benchmarks/native_overhead.py                          # prints the Markdown section
    python benchmarks/native_overhead.py --output out/native.md --json out/native.json

Part 1 (C++, build/native/srt_overhead): the demo checkpoint's FP32 engine at 256x512, timed
interleaved in rounds in one process: ``ov::InferRequest::infer()`` alone (compiled as the core
compiles it), ``srt_engine_run`` on a BGR frame of the network's size, and ``srt_engine_run`` on a
1920x1080 camera frame (adds the resize). Overhead = per native call, its wall time minus the
inference call inside it (argument checks, resize, colour order, normalization, layout, output
conversion), median over calls; also the paired difference native - bare (median over rounds of the
per-round means), which inference jitter on a busy machine blurs. Target: <= 0.5 ms at 256x512.

Part 2 (runtime.bench, the code of rt-bench): the core on its ONNX Runtime backend, OpenVINO's
Python API (rt-bench's --openvino peer, on the core's input tensor) and the core on its OpenVINO
backend, on the same engine and frame, interleaved.

Needs ``make native-lib`` (or ``make native``) first; BENCHMARKS.md takes the section as it is.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from runtime.cli.common import run_cli  # noqa: E402
from runtime.jsonfile import check_output, write_atomic, write_text_atomic  # noqa: E402

BENCH_BINARY = os.path.join(REPO, "build", "native", "srt_overhead")
TARGET_OVERHEAD_MS = 0.5


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _mean(values):
    return sum(values) / float(len(values))


def overhead(engine, threads, rounds, calls, camera):
    """Run srt_overhead; returns its JSON plus per-round paired overheads (ms)."""
    if not os.path.exists(BENCH_BINARY):
        subprocess.check_call(["cmake", "--build", os.path.join(REPO, "build", "native"), "--target",
                               "srt_overhead", "-j2"])
    out = subprocess.check_output([BENCH_BINARY, engine, str(threads), str(rounds), str(calls),
                                   camera], universal_newlines=True)
    data = json.loads(out)

    def per_round(key):
        samples = data[key]
        return [_mean(samples[i * calls:(i + 1) * calls]) for i in range(rounds)]

    bare = per_round("bare")
    data["summary"] = {}
    for key in ("bare", "net", "camera"):
        data["summary"][key] = {"mean_ms": _mean(data[key]), "median_ms": _median(data[key])}
    for key in ("net", "camera"):
        diffs = [n - b for n, b in zip(per_round(key), bare)]
        data["summary"][key]["paired_difference_ms"] = _median(diffs)
        data["summary"][key]["paired_difference_rounds_ms"] = diffs
        outside = data[key + "_outside_inference"]
        data["summary"][key]["overhead_ms"] = _median(outside)
        data["summary"][key]["overhead_mean_ms"] = _mean(outside)
    return data


def rt_bench_rows(engine, threads, iterations):
    """The core on ONNX Runtime, Python OpenVINO (on the core's input tensor) and the core on
    OpenVINO, on one engine, through runtime.bench.measure."""
    from runtime import bench
    from runtime.backends.native import NativeEngine
    ort = NativeEngine(engine, threads=threads, backend="onnxruntime")
    nat = NativeEngine(engine, threads=threads, backend="openvino")
    tensor = nat.preprocessor.to_tensor(nat.dummy_input())
    runners = [bench.EngineRunner(ort, name="native-onnxruntime"),
               bench.OpenVinoRunner(engine, {nat.input_name: tensor}, threads=threads),
               bench.EngineRunner(nat, name="native-openvino")]
    measurement = bench.measure(runners, warmup_iters=5, iterations=iterations)
    rows, _ = bench.results(measurement)
    for runner in runners:
        runner.close()
    ort.close()
    nat.close()
    return [{"name": r["name"], "includes": r.get("includes"), "latency_ms": r["latency_ms"]}
            for r in rows]


def render(results, rows):
    s = results["summary"]
    h, w = results["input"]
    ch, cw = results["camera_size"]
    lines = [
        "## Native core (libswiftrt) overhead over the bare OpenVINO call",
        "",
        "Machine: {} ({} CPUs), {}; {}; engine `{}` ({}x{}), {} threads, {} rounds x {} calls, "
        "interleaved (benchmarks/native_overhead.py).".format(
            platform.processor() or platform.machine(), os.cpu_count(), platform.platform(),
            results["core"], os.path.relpath(results["engine"], REPO), h, w, results["threads"],
            results["rounds"], results["calls_per_round"]),
        "",
        "| call | mean ms | median ms | overhead: call minus its inference, median (mean) | native - bare, paired median of rounds | core's preprocess / inference / postprocess ms |",
        "|---|---|---|---|---|---|",
        "| bare `InferRequest::infer()` | {:.2f} | {:.2f} | — | — | — |".format(
            s["bare"]["mean_ms"], s["bare"]["median_ms"]),
    ]
    for key, label in (("net", "`srt_engine_run`, {}x{} BGR frame".format(w, h)),
                       ("camera", "`srt_engine_run`, {}x{} BGR frame (+ resize)".format(cw, ch))):
        st = results["stages_" + key]
        lines.append("| {} | {:.2f} | {:.2f} | **{:.3f} ms** ({:.3f}) | {:+.2f} ms | {:.3f} / {:.2f} / {:.3f} |"
                     .format(label, s[key]["mean_ms"], s[key]["median_ms"], s[key]["overhead_ms"],
                             s[key]["overhead_mean_ms"], s[key]["paired_difference_ms"],
                             st["preprocess"], st["inference"], st["postprocess"]))
    met = s["net"]["overhead_ms"] <= TARGET_OVERHEAD_MS
    lines += ["", "Target: overhead <= {} ms at {}x{} (frame of the network's size): {}.".format(
        TARGET_OVERHEAD_MS, h, w, "met" if met else "NOT met")]
    if rows:
        lines += ["", "rt-bench runners on the same engine (runtime.bench, interleaved):", "",
                  "| runner | mean ms | median ms | what one call includes |", "|---|---|---|---|"]
        for r in rows:
            lines.append("| {} | {:.2f} | {:.2f} | {} |".format(
                r["name"], r["latency_ms"]["mean"], r["latency_ms"]["p50"], r["includes"]))
    return "\n".join(lines) + "\n"


def section(engine, threads=2, rounds=20, calls=10, camera="1920x1080", rt_bench_iterations=60):
    """(Markdown section, JSON-ready dict) for BENCHMARKS.md; None when libswiftrt is not built."""
    from runtime import libswiftrt
    if not os.path.exists(libswiftrt.library_path()):
        return None
    data = overhead(os.path.abspath(engine), threads, rounds, calls, camera)
    rows = rt_bench_rows(engine, threads, rt_bench_iterations) if rt_bench_iterations else []
    return render(data, rows), {"overhead": data, "rt_bench": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", help="an .onnx engine (default: the demo checkpoint's FP32 "
                                         "export at 256x512, engines/bench/)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--camera", default="1920x1080")
    parser.add_argument("--rt-bench-iterations", type=int, default=60,
                        help="timed calls per rt-bench runner (0: skip part 2)")
    parser.add_argument("--output", help="write the Markdown section here")
    parser.add_argument("--json", help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    outputs = [(flag, check_output(path, flag)) for flag, path in
               (("--output", args.output), ("--json", args.json)) if path]
    engine = args.engine
    if not engine:
        from run_cpu_benchmarks import export_fp32
        engine, _ = export_fp32("swiftnet-rn18")
    made = section(engine, args.threads, args.rounds, args.calls, args.camera,
                   args.rt_bench_iterations)
    if made is None:
        sys.stderr.write("libswiftrt is not built: run make native-lib first\n")
        return 2
    text, data = made
    sys.stdout.write(text)
    for flag, path in outputs:
        if flag == "--output":
            write_text_atomic(path, text)
        else:
            write_atomic(path, data, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="native_overhead"))
