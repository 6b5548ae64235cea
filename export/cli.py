"""rt-export: checkpoint -> verified ONNX artifact + manifest (engines/NAME.onnx + NAME.onnx.json).

Only argument parsing and printing: the work is export/api.py (and runtime/plan for plans).
"""
import argparse
import os
import sys
import time

from export.api import ReducedOptions, check_target, export, export_reduced, parse_size
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError

DEFAULT_SIZE = (256, 512)
TRT_VERSION_HELP = (
    "TensorRT version the artifact is for (8.2.x, 8.4.x, 8.5.x, 8.6.x, 10.x): picks the opset "
    "(13 on 8.2/8.4, 17 on 8.5/8.6/10.x), the graph's I/O form and the INT8 calibration cache "
    "header, and the export fails when that version's ONNX parser would reject the graph. Forms: "
    "8.2/8.4 have no UINT8, so the frame comes in as float32 NHWC and the class map leaves as "
    "int32; 8.5/8.6 take the uint8 frame cast to float first and make the uint8 class map "
    "ArgMax -> FLOAT -> UINT8; 10.x casts ArgMax -> UINT8 directly. Default: the 8.5/8.6 form, "
    "legal on 8.5, 8.6 and 10.x (the manifest's tensorrt_compat lists where an artifact is legal)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rt-export",
        description="Export a SwiftNet checkpoint to ONNX with a manifest, checked by a "
                    "PyTorch vs ONNX Runtime parity gate.")
    parser.add_argument("--arch", help="network name: " + ", ".join(_archs()) +
                        " (not needed with --onnx)")
    parser.add_argument("--checkpoint", help="checkpoint: the published SwiftNet layouts or ours "
                                             "(default: untrained weights, for testing only)")
    parser.add_argument("--size", help="input HEIGHTxWIDTH (default 256x512; forecast bundles: the "
                                       "size the forecaster was trained at)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                        help="numeric precision of the artifact (fp16/int8: converted from the "
                             "parity-gated FP32 export by calib/, with the accuracy cost measured)")
    parser.add_argument("--trt-version", metavar="V", help=TRT_VERSION_HELP)
    parser.add_argument("--dla", action="store_true",
                        help="with --trt-version: the form TensorRT's DLA (Xavier, Orin) runs (resizes with "
                             "constant integer scales), and print where each layer runs (DLA or GPU) by "
                             "that version's DLA rules; build it with rt-plan --dla-core N --gpu-fallback")
    parser.add_argument("--opset", type=int,
                        help="ONNX opset (default: from --trt-version, else 17); must be in that "
                             "TensorRT's range; forecast bundles: 19 with --deform-form onnx")
    parser.add_argument("--input", dest="input_format", default="frame",
                        choices=["frame", "tensor", "deepstream"],
                        help="frame: uint8 HxWx3 camera frame, normalized in the graph (default); "
                             "tensor: normalized float NCHW; deepstream: float NCHW RGB as "
                             "DeepStream's nvinfer feeds it, logits out (docs/serving.md)")
    parser.add_argument("--color-order", default="BGR", choices=["BGR", "RGB"],
                        help="colour order of frames fed to the engine (OpenCV gives BGR)")
    parser.add_argument("--output-kind", default="class_map", choices=["class_map", "logits"],
                        help="class_map: argmax in the graph, uint8 (int32 for TensorRT 8.2/8.4; "
                             "default); logits: float scores")
    parser.add_argument("--resize", default="stretch", choices=["stretch", "letterbox", "crop"],
                        help="how the runtime fits frames to the input by default")
    parser.add_argument("--parity-images", type=int, default=4,
                        help="images for the PyTorch vs ONNX Runtime parity gate (default 4)")
    parser.add_argument("--min-agreement", type=float, default=0.999,
                        help="minimum argmax agreement of the parity gate (default 0.999)")
    parser.add_argument("--output", "-o", help="output .onnx, or .plan to build a TensorRT engine "
                                               "(default engines/<arch>_<precision>.onnx)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="frames per inference, static (default 1): N cameras through one "
                             "engine call (rt-segment with several sources); fp32 exports and "
                             "the fp32/fp16 plans built from them")
    _add_reduced_precision_args(parser)
    _add_forecast_args(parser)
    _add_plan_args(parser)
    add_common_args(parser)
    return parser


def _add_reduced_precision_args(parser):
    group = parser.add_argument_group("fp16 / int8 (see calib/)")
    group.add_argument("--calib", help="int8: calibration images: a folder (Cityscapes layout "
                                       "works), a glob, a video, or 'synthetic'")
    group.add_argument("--calib-count", type=int, default=500,
                       help="int8: images sampled for calibration (default 500)")
    group.add_argument("--calib-method", default="percentile",
                       choices=["entropy", "percentile", "minmax"],
                       help="int8: ONNX Runtime calibrator (default percentile: on the demo "
                            "checkpoint it lost 0.06 pp mIoU, entropy 3.7 pp)")
    group.add_argument("--calib-seed", type=int, default=0,
                       help="int8: seed of the calibration sample (default 0)")
    group.add_argument("--flavor", choices=["cpu", "trt"],
                       help="int8: cpu = U8S8 QDQ that ONNX Runtime accelerates on x86 "
                            "(default without --trt-version; no TensorRT parses it); trt = "
                            "TensorRT's explicit INT8 QDQ (default with --trt-version; also the form "
                            "--backend openvino runs fastest), plus a TensorRT calibration cache "
                            "and amax table for the FP32 model")
    group.add_argument("--keep-fp32", action="append", default=[], metavar="NODES",
                       help="fp16/int8: ONNX node names (comma-separated, repeatable) left in FP32")
    group.add_argument("--max-drop", type=float,
                       help="int8: leave the costliest layers in FP32 until the drop is at most "
                            "this (mIoU pp with --eval-data, else %% of pixels whose class "
                            "differs from FP32); fp16: fail above it")
    group.add_argument("--eval-data", help="fp16/int8: held-out Cityscapes-format folder for the "
                                           "mIoU drop against FP32 (default: argmax agreement "
                                           "on generated scenes)")


def _add_forecast_args(parser):
    group = parser.add_argument_group("forecast bundles (--arch swiftnet-rn18-f2f, see docs/forecast-bundle.md)")
    group.add_argument("--features-checkpoint", metavar="CKPT",
                       help="the swiftnet-rn18-sl checkpoint the forecaster was trained on "
                            "(default: the path recorded in the forecaster checkpoint)")
    group.add_argument("--deform-form", choices=["matmul", "grid_sample", "gather", "onnx"],
                       help="deformable convolution in ONNX: matmul (bilinear sampling as one MatMul, "
                            "opset 13, every target; the fastest of the portable forms at the forecaster's 8x16 maps; default), "
                            "grid_sample (opset >= 16: ONNX Runtime, TensorRT >= 8.5), gather (opset 13: "
                            "TensorRT 8.2 / TX2), onnx (DeformConv, opset 19: TensorRT >= 10.1, "
                            "ONNX Runtime >= 1.25)")


def _export_bundle(args, size, opset, log):
    from export.forecast_export import BUNDLE_ARCH, BundleOptions, export_bundle
    if not args.checkpoint:
        raise UserError("--arch {} needs --checkpoint: a forecaster trained with rt-train --arch f2f-8"
                        .format(BUNDLE_ARCH))
    output = args.output or os.path.join("engines", "{}_{}".format(BUNDLE_ARCH, args.precision))
    if output.endswith((".onnx", ".plan", ".json")):
        raise UserError("--output {}: a forecast bundle is a folder (three stages + forecast.json)".format(output))
    export_bundle(args.checkpoint, output, BundleOptions(features_checkpoint=args.features_checkpoint,
                  size=size if args.size_given else None, opset=opset, deform_form=args.deform_form,
                  output_kind=args.output_kind, color_order=args.color_order, resize=args.resize,
                  precision=args.precision, calib=args.calib, calib_count=args.calib_count,
                  calib_method=args.calib_method, calib_seed=args.calib_seed, flavor=args.flavor,
                  min_agreement=args.min_agreement, trt_version=args.trt_version, log=log))
    return 0


def _archs():
    """Registry names without importing torch (the plan path runs on devices without it)."""
    return ["swiftnet-rn18", "swiftnet-pyr-rn18", "swiftnet-mn2", "swiftnet-rn18-ood", "swiftnet-rn18-sl",
            "swiftnet-rn18-f2f (forecast bundle from an f2f-8 checkpoint)"]


def _add_plan_args(parser):
    group = parser.add_argument_group("TensorRT plans (--output X.plan; needs TensorRT and a GPU)")
    group.add_argument("--onnx", help="build the plan from this exported ONNX model (with its "
                                      "manifest) instead of exporting one first; needs no torch")
    group.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MB)")
    group.add_argument("--timing-cache", help="timing cache file, reused across builds")
    group.add_argument("--int8-mode", choices=["qdq", "cache", "ranges"],
                       help="INT8 from Q/DQ nodes (default for INT8 ONNX), a calibration cache "
                            "or an amax table")
    group.add_argument("--calib-cache", help="TensorRT calibration cache (--int8-mode cache)")
    group.add_argument("--amax-json", help="amax table for dynamic ranges (--int8-mode ranges)")
    group.add_argument("--fp32-layers", action="append", default=[], metavar="NAMES",
                       help="layer-name substrings kept in FP32 (comma-separated, repeatable)")


def main(argv):
    args = build_parser().parse_args(argv)
    args.size_given = args.size is not None
    size = parse_size(args.size or "256x512")
    _resolve_target(args)
    opset_given = args.opset
    if args.parity_images < 1:
        raise UserError("--parity-images must be at least 1")
    if not args.arch and not args.onnx:
        raise UserError("--arch is required (or --onnx to build a TensorRT plan from an export)")
    plan = (args.output or "").endswith(".plan")
    if args.batch != 1 and (args.arch == "swiftnet-rn18-f2f" or args.onnx
                            or args.precision == "int8" or (args.precision != "fp32" and not plan)):
        raise UserError("--batch applies to fp32 exports of single networks and the plans built "
                        "with them (a forecast bundle keeps one feature ring per camera: run its "
                        "cameras as a loop; --onnx: the batch is the ONNX model's)")
    if args.arch == "swiftnet-rn18-f2f":
        return _export_bundle(args, size, opset_given, _log(args.quiet))
    args.opset = args.opset or _default_opset(args.trt_version)
    output = args.output or os.path.join("engines", "{}_{}.onnx".format(args.arch, args.precision))
    if output.endswith(".plan"):
        return _build_plan(args, size, output, _log(args.quiet))
    if args.onnx:
        raise UserError("--onnx only applies when --output is a .plan")
    if not output.endswith(".onnx"):
        raise UserError("--output {}: use .onnx (ONNX Runtime, or TensorRT's input) or .plan "
                        "(a TensorRT engine built here)".format(output))
    if args.dla and (args.precision != "fp32" or args.arch == "swiftnet-rn18-f2f"):
        raise UserError("--dla exports the FP32 model of a segmentation network: build it FP16 or INT8 "
                        "on the device with rt-plan --dla-core N")
    if args.precision != "fp32":
        return _export_reduced(args, size, output, _log(args.quiet))
    _refuse_reduced_only_args(args)
    export(args.arch, args.checkpoint, size, output, opset=args.opset,
           input_format=args.input_format, color_order=args.color_order,
           output_kind=args.output_kind, resize=args.resize, parity_images=args.parity_images,
           min_agreement=args.min_agreement, trt_version=args.trt_version, dla=args.dla,
           log=_log(args.quiet), batch=args.batch)
    if args.dla:
        from runtime.plan import dla
        print("\n".join(dla.placement(output, args.trt_version, "fp16").table()))
    return 0


def _default_opset(trt_version):
    from export.onnx_export import default_opset
    return default_opset(trt_version)


def _resolve_target(args):
    """--trt-version is the one knob for the target: checked (export.api.check_target) before any
    work, whichever export follows; the flavor follows it unless given."""
    check_target(args.trt_version, args.opset, args.flavor, args.precision)
    if args.flavor is None:
        args.flavor = "trt" if args.trt_version is not None else "cpu"


def _build_plan(args, size, output, log):
    """A TensorRT plan: from --onnx, or from an ONNX export made first beside the plan."""
    from runtime.plan.build import build_plan
    source = args.onnx
    if not source:
        source = output[:-len(".plan")] + ".onnx"
        if args.trt_version is None:
            args.trt_version = _installed_trt_version()
            args.opset = args.opset or _default_opset(args.trt_version)
        if args.precision == "int8":
            args.flavor = "trt"  # TensorRT reads explicit Q/DQ, not the CPU flavor
        log("exporting the ONNX model the plan is built from: {}".format(source))
        if args.precision == "int8":
            _export_reduced(args, size, source, log)
        else:
            export(args.arch, args.checkpoint, size, source, opset=args.opset,
                   input_format=args.input_format, color_order=args.color_order,
                   output_kind=args.output_kind, resize=args.resize,
                   parity_images=args.parity_images, min_agreement=args.min_agreement,
                   trt_version=args.trt_version, log=log, batch=args.batch)
    fp32_layers = [n.strip() for item in args.fp32_layers for n in item.split(",") if n.strip()]
    build_plan(source, output, precision=args.precision, workspace_mb=args.workspace_mb,
               timing_cache=args.timing_cache, int8_mode=args.int8_mode,
               calib_cache=args.calib_cache, amax_json=args.amax_json, fp32_layers=fp32_layers,
               log=log)
    return 0


def _installed_trt_version():
    """The TensorRT here, which the plan is built with (and the ONNX export made for)."""
    from runtime.plan.builder import import_trt
    return import_trt().__version__


def _refuse_reduced_only_args(args):
    given = [flag for flag, value in (("--calib", args.calib), ("--keep-fp32", args.keep_fp32),
                                      ("--max-drop", args.max_drop),
                                      ("--eval-data", args.eval_data)) if value]
    if given:
        raise UserError("{} only apply to --precision fp16/int8".format(", ".join(given)))


def _export_reduced(args, size, output, log):
    keep = [name.strip() for item in args.keep_fp32 for name in item.split(",") if name.strip()]
    export_reduced(args.arch, args.checkpoint, size, output, args.precision, ReducedOptions(
        calib=args.calib, calib_count=args.calib_count, calib_method=args.calib_method,
        calib_seed=args.calib_seed, flavor=args.flavor, keep_fp32=keep, max_drop=args.max_drop,
        eval_data=args.eval_data, trt_version=args.trt_version, opset=args.opset,
        input_format=args.input_format, color_order=args.color_order, output_kind=args.output_kind,
        resize=args.resize, parity_images=args.parity_images, min_agreement=args.min_agreement,
        progress=not args.quiet, log=log))
    return 0


def _log(quiet):
    start = time.time()

    def log(message):
        if not quiet:
            sys.stderr.write("[{:6.1f}s] {}\n".format(time.time() - start, message))
            sys.stderr.flush()
    return log


def entry():
    sys.exit(run_cli(main, prog="rt-export"))


if __name__ == "__main__":
    entry()
