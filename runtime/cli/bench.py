"""rt-bench: trtexec-grade latency reports for engines, side by side with their peers.

    rt-bench --engine engines/swiftnet-rn18_fp32.onnx
    rt-bench --engine a.onnx --engine b.onnx --iterations 200 --json bench.json
    rt-bench --engine engines/x.onnx --torch swiftnet-rn18 --openvino --markdown bench.md
    rt-bench --engine engines/x.plan --power --video drive.mp4 --plot bench.png
    rt-bench --engine engines/swiftnet-rn18_fp32.onnx --engine engines/f2f-mid_fp32 --video drive.mp4
    rt-bench --list-backends

Per runner: latency min/mean/median/p90/p95/p99/max, standard deviation and
coefficient of variation (warned when unstable), throughput and the ratio to the
first engine; on TensorRT also H2D, GPU compute, D2H and enqueue times (CUDA events).
A forecast bundle (forecast.json or its folder) is timed per streamed frame once warmed
up (features + f2f + decoder), with each stage's time. Runners are timed interleaved in
rounds; warm-up never counts. ``--video`` runs every engine through the streaming pipeline,
one after the other (with a bundle: the forecast / plain stream FPS ratio). The environment
block says what machine, clocks and versions produced the numbers.

This module only parses and checks the flags and prints; the measurement is
runtime.bench_run (which benchmarks/ call too) and the report text runtime.bench_format.
"""
import argparse
import importlib.util
import json
import logging
import os
import sys

from runtime import backends, bench, bench_format, bench_run, libswiftrt
from runtime.backends import BACKEND_HELP
from runtime.cli.common import add_common_args, add_verify_arg, engine_inputs, run_cli
from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output, write_text_atomic


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (UserError), like every other user error."""

    def error(self, message):
        raise UserError(message)


def build_parser():
    parser = _Parser(prog="rt-bench", description="Latency and throughput of segmentation "
                     "engines, with the PyTorch / OpenVINO peers and the streaming pipeline.")
    parser.add_argument("--list-backends", action="store_true",
                        help="print libswiftrt's backends (compiled in, version, files, options) and exit")
    parser.add_argument("--engine", "-e", action="append", metavar="ENGINE",
                        help="engine (.onnx or .plan with its manifest, or a forecast bundle's "
                             "forecast.json or folder); repeat to compare, ratios are to the first "
                             "(required unless --list-backends)")
    warm = parser.add_mutually_exclusive_group()
    warm.add_argument("--warmup", type=int, metavar="N", help="warm-up calls per runner")
    warm.add_argument("--warmup-s", type=float, metavar="S",
                      help="warm-up seconds per runner (default {:g})".format(bench.DEFAULT_WARMUP_S))
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--iterations", "-n", type=int, metavar="N", help="timed calls per runner")
    amount.add_argument("--duration", type=float, metavar="S",
                        help="timed seconds per runner (default {:g})".format(bench.DEFAULT_DURATION_S))
    parser.add_argument("--rounds", type=int, default=bench.DEFAULT_ROUNDS, metavar="R",
                        help="interleaved rounds (default {})".format(bench.DEFAULT_ROUNDS))
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for every CPU runner alike (default: usable cores)")
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="force a backend, {}: once for every engine, or once per --engine "
                             "in the same order (the same file on two backends compares them)"
                             .format(BACKEND_HELP))
    parser.add_argument("--providers", help="ONNX Runtime providers, comma-separated")
    add_verify_arg(parser)
    parser.add_argument("--cv-warn", type=float, default=bench.DEFAULT_CV_WARN, metavar="X",
                        help="warn when std/mean exceeds X (default {:g})".format(bench.DEFAULT_CV_WARN))
    peers = parser.add_argument_group("peers (same input, same threads, same run)")
    peers.add_argument("--torch", metavar="ARCH[:CHECKPOINT]",
                       help="PyTorch eager FP32 (imports torch; untrained weights without CHECKPOINT)")
    peers.add_argument("--openvino", action="store_true",
                       help="OpenVINO CPU on the first .onnx engine (where installed)")
    peers.add_argument("--openvino-precision", default="f32", metavar="P",
                       help="OpenVINO INFERENCE_PRECISION_HINT (default f32; bf16, f16)")
    e2e = parser.add_argument_group("end to end")
    e2e.add_argument("--video", metavar="FILE",
                     help="also run the rt-segment pipeline headless on FILE, every engine "
                          "in turn (forecast bundles as rt-segment streams them)")
    e2e.add_argument("--e2e-frames", type=int, metavar="N", help="stop the video after N frames")
    e2e.add_argument("--realtime", action="store_true",
                     help="play the video at its frame rate, dropping frames like a camera "
                          "(capture-to-result as a camera user sees it)")
    parser.add_argument("--power", action="store_true",
                        help="average board power and energy per frame from tegrastats (Jetson)")
    parser.add_argument("--power-interval", type=int, default=100, metavar="MS",
                        help="tegrastats sampling interval (default 100 ms)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the report as JSON")
    out.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    out.add_argument("--plot", metavar="PNG", help="latency distributions and stage bars (matplotlib)")
    add_common_args(parser)
    return parser


def _check_args(args):
    """What only the command line has (engine files, outputs, --plot); bench_run.run checks the
    measurement's own values (BenchOptions.check)."""
    if not args.engine:
        raise UserError("the following arguments are required: --engine/-e")
    for path in args.engine:
        if not os.path.exists(path):
            raise UserError("engine not found: {}".format(path))
    check_outputs(args)
    if args.plot and _missing("matplotlib"):
        raise UserError("--plot needs matplotlib: pip install matplotlib")


def check_outputs(args):
    """Refuse, before any measurement, output paths that would replace an input or a device."""
    inputs = Inputs()
    for path in args.engine:
        engine_inputs(inputs, path)
    inputs.add(args.video, "--video")
    if args.torch and ":" in args.torch:
        inputs.add(args.torch.split(":", 1)[1], "--torch checkpoint")
    given = [("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)]
    for flag, path in given:
        if path:
            check_output(path, flag, inputs, others=[g for g in given if g[0] != flag])


def _missing(module):
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


# -- main ---------------------------------------------------------------------------------

def main(argv):
    args = build_parser().parse_args(argv)
    if args.list_backends:
        table = bench_format.format_backends([c.as_dict() for c in backends.capabilities()])
        library = "{} ({})".format(libswiftrt.version(), libswiftrt.load_library().path)
        sys.stdout.write("{}\n{}\n".format(library, table))
        return 0
    _check_args(args)
    options = bench_run.BenchOptions(
        backends=bench_run.engine_backends(args.backend, len(args.engine)),
        providers=[p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None,
        threads=args.threads, verify=not args.no_verify, warmup=args.warmup, warmup_s=args.warmup_s,
        iterations=args.iterations, duration=args.duration, rounds=args.rounds, cv_warn=args.cv_warn,
        torch=args.torch,
        openvino=[args.openvino_precision] if args.openvino else [], video=args.video,
        e2e_frames=args.e2e_frames, realtime=args.realtime, power=args.power,
        power_interval=args.power_interval, quiet=args.quiet, command=["rt-bench"] + list(argv))
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    rep, samples = bench_run.run(args.engine, options)
    if not args.quiet:
        sys.stdout.write(bench_format.format_console(rep) + "\n")
    if args.json:
        _write(args.json, json.dumps(rep, indent=2, default=str) + "\n")
    if args.markdown:
        _write(args.markdown, bench_format.format_markdown(rep))
    if args.plot:
        bench_format.plot(rep, samples, args.plot)
    for path in (args.json, args.markdown, args.plot):
        if path and not args.quiet:
            sys.stdout.write("wrote {}\n".format(path))
    return 0


def _write(path, text):
    """Atomically (runtime.jsonfile): never half a report, never over a device."""
    write_text_atomic(path, text)


def entry():
    sys.exit(run_cli(main, prog="rt-bench"))


if __name__ == "__main__":
    entry()
