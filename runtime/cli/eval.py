"""rt-eval: accuracy of an engine on a Cityscapes-format folder (mIoU, per-class IoU, pixel accuracy).

    rt-eval --engine engines/swiftnet.onnx --data data/synthetic --split val [--reference E2]

Predictions are made by the same Engine the streaming runtime uses (same
preprocessing) and compared at the label's full resolution (class maps resized
with nearest neighbour). ``--reference`` adds the pixel agreement with a second
engine (e.g. INT8 against FP32).

Forecast bundles (``--engine .../forecast.json``) are evaluated on a *sequence* folder
(``rt-synth sequences``): forecast mIoU and moving-object mIoU at t + horizon next to
copy-last and the oracle (see runtime/forecast_eval.py).

Outlier engines (manifest task ``outlier``) on data with outlier masks
(``*_gtFine_outlierMask.png``: 1 outlier, 0 inlier, 255 void) also get pixel-level
outlier AP, AUROC and FPR at 95 % TPR (void ignored; scores resized bilinearly to the
mask's resolution and binned, see runtime.metrics.OutlierHistogram), and the mIoU is
then the inlier mIoU (outlier pixels ignored). Where the generator wrote its sidecars
(``*_gtFine_outlierInstanceIds.png`` + ``*_gtFine_outlierObjects.json``) the JSON also has
``outlier.breakdown``: AP / AUROC / FPR95 per outlier kind, texture, size bucket, distance,
position, contrast, lighting and exposure (runtime/outlier_eval.py); ``--plot FILE``
draws the inlier and outlier score distributions.

This module parses, prints and writes the JSON; the evaluation is runtime/evaluation.py.
"""
import sys

from runtime import evaluation, tasks
from runtime import manifest as manifest_mod
from runtime.backends import BACKEND_HELP
from runtime.cli.common import (OneLineParser, add_common_args, add_verify_arg, check_threads,
                                engine_inputs, run_cli)
from runtime.cli.fleet import add_fleet_args, check_fleet_args, run_fleet_cli
from runtime.jsonfile import Inputs, check_output, write_atomic


def build_parser():
    parser = OneLineParser(prog="rt-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="engine (.onnx / .plan) with its manifest, or a "
                                                        "forecast bundle (forecast.json or its folder)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="Cityscapes-format root (leftImg8bit/, gtFine/)")
    add_fleet_args(parser, data)
    parser.add_argument("--split", default="val")
    parser.add_argument("--reference", help="a second engine: report pixel agreement with it")
    parser.add_argument("--limit", type=int, help="evaluate the first N images (bundles: sequences) only")
    parser.add_argument("--backend", help="override the backend: " + BACKEND_HELP)
    parser.add_argument("--threads", type=int, help="inference threads (ONNX Runtime, OpenVINO)")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
    tasks.add_eval_arguments(parser)   # each model family's flags (runtime/tasks/)
    add_verify_arg(parser)
    add_common_args(parser)
    return parser


def check_json_path(args):
    """Refuse, before any work, a --json or --plot path that would replace an input, an engine
    or a device (or each other)."""
    if args.json_path or args.plot:
        inputs = engine_inputs(Inputs(), args.engine).add(args.data, "--data")
        if args.reference:
            engine_inputs(inputs, args.reference, "--reference")
        if args.json_path:
            check_output(args.json_path, "--json", inputs)
        if args.plot:
            others = [("--json", args.json_path)] if args.json_path else []
            check_output(args.plot, "--plot", inputs, others=others)


def main(argv):
    args = build_parser().parse_args(argv)
    check_threads(args.threads)
    check_json_path(args)
    options = tasks.eval_options(args)
    if check_fleet_args(args, refused=[("--reference", args.reference), ("--limit", args.limit),
                                       ("--plot", args.plot)]):
        return run_fleet_cli(args, report_path=args.json_path, report_flag="--json",
                             require_labels=True, split=args.split)
    common = dict(reference=args.reference, limit=args.limit, backend=args.backend, threads=args.threads,
                  verify=not args.no_verify, quiet=args.quiet)
    result = evaluation.evaluate_engine(args.engine, args.data, args.split, options, **common)
    for line in tasks.for_name(manifest_mod.peek_task(args.engine)).eval_lines(result):
        print(line)
    if args.json_path:
        write_atomic(args.json_path, result)
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-eval"))


if __name__ == "__main__":
    entry()
