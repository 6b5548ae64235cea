"""rt-plan: build a TensorRT plan from an exported ONNX model, on the device (no torch, no onnx).

    rt-plan engines/swiftnet-rn18_fp32.onnx --precision fp16 --output engines/swiftnet-rn18_fp16.plan
    rt-plan engines/X.onnx --check-only --trt-version 8.2     # the static check, no TensorRT needed
                                       # (10.x: + TensorRT-RTX's parser and builder where installed)
    rt-plan engines/X.onnx --print-trtexec                     # the equivalent trtexec line
    rt-plan engines/X.onnx --check-images frames/              # check the plan on your own frames
    rt-plan engines/f2f_fp32 --precision fp16 --output engines/f2f_fp16_plans   # a forecast bundle
"""
import argparse
import os
import sys

from runtime import manifest as manifest_mod
from runtime.manifest import Manifest
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output
from runtime.plan import trt_rules


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rt-plan",
        description="Build a TensorRT plan from an exported ONNX model (with its manifest), on "
                    "the device: the graph is checked against this TensorRT's parser rules "
                    "first, the plan against the ONNX model after.")
    parser.add_argument("onnx", help="exported .onnx (its manifest .onnx.json beside it), or a forecast "
                                     "bundle (its folder or forecast.json): a plan per stage")
    parser.add_argument("--output", "-o", help="plan to write (default: <onnx stem>_<precision>.plan "
                                               "beside the ONNX model); for a bundle, a new folder "
                                               "(default: <bundle folder>_<precision>_plans)")
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"],
                        help="fp16 (default; TX2 and every Jetson), int8 (GPUs with fast INT8: "
                             "Xavier, Orin), fp32")
    parser.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MB)")
    parser.add_argument("--timing-cache", help="timing cache file, reused across builds")
    parser.add_argument("--int8-mode", choices=["qdq", "cache", "ranges"],
                        help="INT8 from Q/DQ nodes (default for INT8 ONNX), a calibration cache "
                             "or an amax table (both written by rt-export --precision int8 "
                             "--flavor trt, for the FP32 model)")
    parser.add_argument("--calib-cache", help="TensorRT calibration cache (--int8-mode cache)")
    parser.add_argument("--amax-json", help="amax table for dynamic ranges (--int8-mode ranges)")
    parser.add_argument("--fp32-layers", action="append", default=[], metavar="NAMES",
                        help="layer-name substrings kept in FP32 (comma-separated, repeatable)")
    parser.add_argument("--check-images", metavar="DIR|VIDEO",
                        help="check the plan against the ONNX model on the first frames of a folder "
                             "of images or a video (default: the four road scenes shipped in "
                             "runtime/plan/check_frames)")
    parser.add_argument("--dla-core", type=int, metavar="N",
                        help="build for DLA core N (Xavier, Orin; fp16/int8): every layer DLA runs goes "
                             "there (export the DLA form with rt-export --dla)")
    parser.add_argument("--gpu-fallback", action="store_true",
                        help="with --dla-core: layers DLA cannot run (the frame's Cast, ArgMax) run on the GPU")
    parser.add_argument("--trt-version", metavar="V",
                        help="with --check-only / --print-trtexec: the TensorRT version to check "
                             "or print for (default: the one installed)")
    parser.add_argument("--check-only", action="store_true",
                        help="only the static check against --trt-version's parser rules (for 10.x "
                             "also TensorRT-RTX's parser and builder, where it is installed)")
    parser.add_argument("--print-trtexec", action="store_true",
                        help="print the trtexec command that builds the same plan, and exit")
    add_common_args(parser)
    return parser


def default_plan_path(onnx_path, precision):
    stem = onnx_path[:-len(".onnx")] if onnx_path.endswith(".onnx") else onnx_path
    for suffix in ("_fp32", "_fp16", "_int8"):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    return "{}_{}.plan".format(stem, precision)


def _version(args):
    if args.trt_version:
        trt_rules.family(args.trt_version)
        return args.trt_version
    from runtime.plan.builder import import_trt
    return import_trt().__version__


def main(argv):
    args = build_parser().parse_args(argv)
    if args.workspace_mb <= 0:
        raise UserError("--workspace-mb must be positive")
    if args.check_images and (args.check_only or args.print_trtexec):
        raise UserError("--check-images is for the post-build check: not with --check-only or "
                        "--print-trtexec (no plan is built)")
    if args.gpu_fallback and args.dla_core is None:
        raise UserError("--gpu-fallback applies to a DLA build: give --dla-core N")
    if args.dla_core is not None and args.dla_core < 0:
        raise UserError("--dla-core must be 0 or more")
    if os.path.isdir(args.onnx) or args.onnx.endswith(manifest_mod.BUNDLE_NAME):
        return _bundle(args)
    if not os.path.isfile(args.onnx):
        raise UserError("ONNX model not found: {}".format(args.onnx))
    output = args.output or default_plan_path(args.onnx, args.precision)
    if args.check_only:
        version = _version(args)
        trt_rules.require_legal(args.onnx, version)
        compat = Manifest.load(args.onnx).tensorrt_compat
        print("{}: legal for TensorRT {} (static check; the manifest lists {})".format(
            args.onnx, version, ", ".join(compat.get("legal") or []) or "nothing"))
        from runtime.plan import rtx
        verdict = rtx.require_accepted(args.onnx, trt_rules.family(version))  # 10.x, RTX installed
        if verdict is not None:
            print("{}: TensorRT-RTX {}: {}".format(args.onnx, verdict.version, verdict.summary()))
        if args.dla_core is not None:  # where TensorRT's DLA rules put each layer
            from runtime.plan import dla
            print("\n".join(dla.placement(args.onnx, version, args.precision).table()))
        return 0
    if args.print_trtexec:
        from runtime.plan.build import trtexec_command
        version = _version(args)
        trt_rules.require_legal(args.onnx, version)
        if args.precision == "int8" and args.amax_json:
            raise UserError("trtexec has no flag for an amax table: build with rt-plan --amax-json")
        print(trtexec_command(args.onnx, output, args.precision, version, args.workspace_mb,
                              args.timing_cache, args.calib_cache, dla_core=args.dla_core,
                              gpu_fallback=args.gpu_fallback))
        return 0
    from runtime.plan.build import build_plan
    _check_timing_cache(args, output)
    fp32_layers = [n.strip() for item in args.fp32_layers for n in item.split(",") if n.strip()]
    log = (lambda message: None) if args.quiet else (lambda message: sys.stderr.write(message + "\n"))
    build_plan(args.onnx, output, precision=args.precision, workspace_mb=args.workspace_mb,
               timing_cache=args.timing_cache, int8_mode=args.int8_mode,
               calib_cache=args.calib_cache, amax_json=args.amax_json, fp32_layers=fp32_layers,
               check_images=args.check_images, log=log, dla_core=args.dla_core,
               gpu_fallback=args.gpu_fallback)
    print(output)
    return 0


def _bundle(args):
    """A forecast bundle: a plan per stage and a forecast.json naming them."""
    from runtime.plan.build import build_bundle_plans
    if args.check_only or args.print_trtexec or args.int8_mode or args.calib_cache or args.amax_json \
            or args.dla_core is not None:
        raise UserError("for a forecast bundle rt-plan builds the three stages; check or print them one "
                        "stage (.onnx) at a time")
    folder = os.path.dirname(os.path.abspath(manifest_mod.resolve(args.onnx)[1]))
    output = args.output or "{}_{}_plans".format(folder.rstrip(os.sep), args.precision)
    _check_timing_cache(args, output)
    log = (lambda message: None) if args.quiet else (lambda message: sys.stderr.write(message + "\n"))
    build_bundle_plans(args.onnx, output, precision=args.precision, workspace_mb=args.workspace_mb,
                       timing_cache=args.timing_cache, check_images=args.check_images, log=log)
    print(os.path.join(output, manifest_mod.BUNDLE_NAME))
    return 0


def _check_timing_cache(args, output):
    """The timing cache is rewritten after a build: never over an input, an engine, a manifest
    or a non-regular file (refused before TensorRT runs)."""
    if args.timing_cache:
        inputs = (Inputs().add(args.onnx, "the ONNX model").add(args.calib_cache, "--calib-cache")
                  .add(args.amax_json, "--amax-json").add(args.check_images, "--check-images"))
        args.timing_cache = check_output(args.timing_cache, "--timing-cache", inputs,
                                         others=[("--output", output)])


def entry():
    sys.exit(run_cli(main, prog="rt-plan"))


if __name__ == "__main__":
    entry()
