"""rt-export: checkpoint -> verified ONNX artifact + manifest (engines/NAME.onnx + NAME.onnx.json)."""
import argparse
import datetime
import os
import platform
import re
import sys
import time

from runtime import manifest as manifest_mod
from runtime.cli.common import add_common_args, run_cli
from runtime.errors import UserError

DEFAULT_SIZE = (256, 512)
DEFAULT_OPSET = 17


def parse_size(text):
    """'256x512' -> (256, 512); both multiples of 32 (the network's output stride)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match:
        raise UserError("malformed --size {!r}: expected HEIGHTxWIDTH, e.g. 256x512".format(text))
    height, width = int(match.group(1)), int(match.group(2))
    if height < 64 or width < 64 or height % 32 or width % 32:
        raise UserError("--size {}x{}: height and width must be multiples of 32 and at least 64"
                        .format(height, width))
    return height, width


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
    parser.add_argument("--opset", type=int,
                        help="ONNX opset: 17 for TensorRT 8.5/8.6 (default), 13 for TensorRT 8.2 (TX2); "
                             "forecast bundles: 17, or 19 with --deform-form onnx")
    parser.add_argument("--input", dest="input_format", default="frame", choices=["frame", "tensor"],
                        help="frame: uint8 HxWx3 camera frame, normalized in the graph (default); "
                             "tensor: normalized float NCHW")
    parser.add_argument("--color-order", default="BGR", choices=["BGR", "RGB"],
                        help="colour order of frames fed to the engine (OpenCV gives BGR)")
    parser.add_argument("--output-kind", default="class_map", choices=["class_map", "logits"],
                        help="class_map: uint8 argmax in the graph (default); logits: float scores")
    parser.add_argument("--resize", default="stretch", choices=["stretch", "letterbox", "crop"],
                        help="how the runtime fits frames to the input by default")
    parser.add_argument("--parity-images", type=int, default=4,
                        help="images for the PyTorch vs ONNX Runtime parity gate (default 4)")
    parser.add_argument("--min-agreement", type=float, default=0.999,
                        help="minimum argmax agreement of the parity gate (default 0.999)")
    parser.add_argument("--output", "-o", help="output .onnx, or .plan to build a TensorRT engine "
                                               "(default engines/<arch>_<precision>.onnx)")
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
    group.add_argument("--flavor", default="cpu", choices=["cpu", "trt"],
                       help="int8: cpu = U8S8 QDQ that ONNX Runtime accelerates on x86 "
                            "(default); trt = TensorRT's explicit INT8 QDQ (also the form "
                            "--backend openvino runs fastest), plus a TensorRT calibration cache "
                            "and amax table for the FP32 model")
    group.add_argument("--trt-version", help="int8 --flavor trt: TensorRT version the "
                                             "calibration cache is for (default 8.5.2, "
                                             "8.2.1 with --opset 13)")
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
    from export.forecast_export import BUNDLE_ARCH, export_bundle
    if not args.checkpoint:
        raise UserError("--arch {} needs --checkpoint: a forecaster trained with rt-train --arch f2f-8"
                        .format(BUNDLE_ARCH))
    output = args.output or os.path.join("engines", "{}_{}".format(BUNDLE_ARCH, args.precision))
    if output.endswith((".onnx", ".plan", ".json")):
        raise UserError("--output {}: a forecast bundle is a folder (three stages + forecast.json)".format(output))
    export_bundle(args.checkpoint, output, features_checkpoint=args.features_checkpoint,
                  size=size if args.size_given else None, opset=opset, deform_form=args.deform_form,
                  output_kind=args.output_kind, color_order=args.color_order, resize=args.resize,
                  precision=args.precision, calib=args.calib, calib_count=args.calib_count,
                  calib_method=args.calib_method, calib_seed=args.calib_seed, flavor=args.flavor,
                  min_agreement=args.min_agreement, log=log)
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
    opset_given, args.opset = args.opset, args.opset or DEFAULT_OPSET
    size = parse_size(args.size or "256x512")
    if args.parity_images < 1:
        raise UserError("--parity-images must be at least 1")
    if not args.arch and not args.onnx:
        raise UserError("--arch is required (or --onnx to build a TensorRT plan from an export)")
    if args.arch == "swiftnet-rn18-f2f":
        return _export_bundle(args, size, opset_given, _log(args.quiet))
    output = args.output or os.path.join("engines", "{}_{}.onnx".format(args.arch, args.precision))
    if output.endswith(".plan"):
        return _build_plan(args, size, output, _log(args.quiet))
    if args.onnx:
        raise UserError("--onnx only applies when --output is a .plan")
    if not output.endswith(".onnx"):
        raise UserError("--output {}: use .onnx (ONNX Runtime, or TensorRT's input) or .plan "
                        "(a TensorRT engine built here)".format(output))
    if args.precision != "fp32":
        return _export_reduced(args, size, output, _log(args.quiet))
    _refuse_reduced_only_args(args)
    export(args.arch, args.checkpoint, size, output, opset=args.opset,
           input_format=args.input_format, color_order=args.color_order,
           output_kind=args.output_kind, resize=args.resize, parity_images=args.parity_images,
           min_agreement=args.min_agreement, log=_log(args.quiet))
    return 0


def _build_plan(args, size, output, log):
    """A TensorRT plan: from --onnx, or from an ONNX export made first beside the plan."""
    from export.plan import build_plan
    source = args.onnx
    if not source:
        source = output[:-len(".plan")] + ".onnx"
        if args.precision == "int8":
            args.flavor = "trt"  # TensorRT reads explicit Q/DQ, not the CPU flavor
        log("exporting the ONNX model the plan is built from: {}".format(source))
        if args.precision == "int8":
            _export_reduced(args, size, source, log)
        else:
            export(args.arch, args.checkpoint, size, source, opset=args.opset,
                   input_format=args.input_format, color_order=args.color_order,
                   output_kind=args.output_kind, resize=args.resize,
                   parity_images=args.parity_images, min_agreement=args.min_agreement, log=log)
    fp32_layers = [n.strip() for item in args.fp32_layers for n in item.split(",") if n.strip()]
    build_plan(source, output, precision=args.precision, workspace_mb=args.workspace_mb,
               timing_cache=args.timing_cache, int8_mode=args.int8_mode,
               calib_cache=args.calib_cache, amax_json=args.amax_json, fp32_layers=fp32_layers,
               log=log)
    return 0


def _refuse_reduced_only_args(args):
    given = [flag for flag, value in (("--calib", args.calib), ("--keep-fp32", args.keep_fp32),
                                      ("--max-drop", args.max_drop),
                                      ("--eval-data", args.eval_data)) if value]
    if given:
        raise UserError("{} only apply to --precision fp16/int8".format(", ".join(given)))


def _export_reduced(args, size, output, log):
    """fp16 / int8: the parity-gated FP32 export into a temporary folder, then calib/."""
    import shutil
    import tempfile
    if args.precision == "int8" and not args.calib:
        raise UserError("--precision int8 needs --calib: a folder, glob or video of "
                        "representative frames ('synthetic' for generated scenes)")
    if args.precision == "fp16" and args.calib:
        raise UserError("--calib only applies to --precision int8")
    keep = [name.strip() for item in args.keep_fp32 for name in item.split(",") if name.strip()]
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".rt-export-", dir=folder)
    try:
        fp32 = os.path.join(work, os.path.basename(output)[:-len(".onnx")] + ".fp32.onnx")
        export(args.arch, args.checkpoint, size, fp32, opset=args.opset,
               input_format=args.input_format, color_order=args.color_order,
               output_kind=args.output_kind, resize=args.resize,
               parity_images=args.parity_images, min_agreement=args.min_agreement, log=log)
        if args.precision == "int8":
            from calib.qdq import export_int8
            export_int8(fp32, output, args.calib, count=args.calib_count, seed=args.calib_seed,
                        method=args.calib_method, flavor=args.flavor, keep_fp32=keep,
                        max_drop=args.max_drop, eval_data=args.eval_data,
                        trt_version=args.trt_version, progress=not args.quiet, log=log)
        else:
            from calib.fp16 import export_fp16
            export_fp16(fp32, output, keep_fp32=keep, max_drop=args.max_drop,
                        eval_data=args.eval_data, progress=not args.quiet, log=log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _log(quiet):
    start = time.time()

    def log(message):
        if not quiet:
            sys.stderr.write("[{:6.1f}s] {}\n".format(time.time() - start, message))
            sys.stderr.flush()
    return log


def export(arch, checkpoint, size, output, opset=DEFAULT_OPSET, input_format="frame",
           color_order="BGR", output_kind="class_map", resize="stretch", parity_images=4,
           min_agreement=0.999, log=print):
    """The whole export: load, export, check, parity gate, manifest. Returns the manifest."""
    from export import checkpoints, models, onnx_export

    if not onnx_export.MIN_OPSET <= opset <= onnx_export.MAX_OPSET:
        raise UserError("--opset {}: use {}..{} (13 for TensorRT 8.2, 17 for 8.5/8.6)".format(
            opset, onnx_export.MIN_OPSET, onnx_export.MAX_OPSET))
    if checkpoint:
        log("loading checkpoint {}".format(checkpoint))
        model, info = checkpoints.load_checkpoint(arch, checkpoint)
    else:
        log("WARNING: no --checkpoint: exporting UNTRAINED weights (class maps will be noise)")
        import torch
        torch.manual_seed(0)  # untrained exports are reproducible
        model = models.create(arch)
        info = {"layout": None, "sha256": None, "classes": None,
                "normalization": model.normalization, "input_size": None, "metadata": {}}
    return export_model(model, info, arch, checkpoint, size, output, opset=opset,
                        input_format=input_format, color_order=color_order,
                        output_kind=output_kind, resize=resize, parity_images=parity_images,
                        min_agreement=min_agreement, log=log)


def export_model(model, info, arch, checkpoint, size, output, opset=DEFAULT_OPSET,
                 input_format="frame", color_order="BGR", output_kind="class_map",
                 resize="stretch", parity_images=4, min_agreement=0.999, log=print):
    """Export a loaded model: ONNX, checks, parity gate, manifest. Returns the manifest."""
    from export import onnx_export, parity
    from export.classes import IGNORE_ID, cityscapes_classes

    model.eval()
    classes = info.get("classes") or cityscapes_classes()
    normalization = info.get("normalization") or model.normalization
    wrapper = onnx_export.DeployWrapper(model, normalization, input_format=input_format,
                                        color_order=color_order, output_kind=output_kind)

    log("exporting {} at {}x{} to ONNX opset {}".format(arch, size[0], size[1], opset))
    input_name, output_name, input_shape, input_dtype = onnx_export.export_onnx(
        wrapper, size, output, opset=opset, input_format=input_format)
    written = _checked(onnx_export.check_model, output, opset)
    log("wrote {} (opset {}, {:.1f} MB)".format(output, written, os.path.getsize(output) / 1e6))

    data = _manifest(arch, output, size, input_name, input_shape, input_dtype, input_format,
                     color_order, normalization, output_name, output_kind, classes, IGNORE_ID,
                     opset, resize, checkpoint, info)
    if wrapper.outlier_head:
        _add_outlier(data, output, size)
    log("parity gate: PyTorch vs ONNX Runtime on {} generated scenes".format(parity_images))
    frames = parity_frames(parity_images, size, data["input"])
    try:
        figures = parity.run_parity(wrapper, output, frames, min_agreement=min_agreement)
    except parity.ParityError as exc:
        _remove(output)
        raise UserError(str(exc) + "; {} removed".format(output))
    log("parity: argmax agreement {:.4%}, max abs error {:.2e}, max rel error {:.2e}".format(
        figures["argmax_agreement"], figures["max_abs_error"], figures["max_rel_error"]))
    if "outlier_max_abs_error" in figures:
        log("parity: outlier score max abs error {:.2e}".format(figures["outlier_max_abs_error"]))
    data["parity"] = figures
    path = manifest_mod.write(output, data)
    log("wrote manifest {}".format(path))
    return data


OUTLIER_DEFAULT_THRESHOLD = 0.5


def _add_outlier(data, output, size):
    """The outlier composition: a second output and how to read it (task 'outlier').

    ``keep_fp32`` names the outlier head's nodes, which an INT8 export leaves unquantized.
    """
    from export.onnx_export import OUTLIER_OUTPUT
    height, width = size
    data["task"] = "outlier"
    data["outputs"].append({"name": OUTLIER_OUTPUT, "shape": [1, height, width],
                            "dtype": "float32", "meaning": "outlier_score"})
    data["outlier"] = {"default_threshold": OUTLIER_DEFAULT_THRESHOLD, "score": "1 - P(inlier)",
                       "output": OUTLIER_OUTPUT, "keep_fp32": _head_nodes(output, "logits_conf")}


def _head_nodes(onnx_path, module):
    """Names of the ONNX nodes the exporter made from ``module`` (e.g. /model/logits_conf/...)."""
    import onnx
    graph = onnx.load(onnx_path, load_external_data=False).graph
    tag = "/{}/".format(module)
    return [node.name for node in graph.node if tag in node.name]


def _checked(check, path, opset):
    try:
        return check(path, opset)
    except Exception as exc:
        _remove(path)
        raise UserError("exported model failed the ONNX check: {}".format(str(exc).splitlines()[0]))


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def parity_frames(count, size, manifest_input):
    """``count`` generated road scenes, preprocessed exactly as the runtime will."""
    from runtime.data.synthetic import render_scene
    from runtime.preprocess import Preprocessor
    pre = Preprocessor(manifest_input)
    frames = []
    for index in range(count):
        image = render_scene(seed=12345, index=index, size=size)[0]
        frames.append(pre(image)[0])
    return frames


def _versions():
    import onnx
    import torch
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "onnx": onnx.__version__}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    from runtime import __version__
    versions["swiftrt"] = __version__
    return versions


def _manifest(arch, output, size, input_name, input_shape, input_dtype, input_format, color_order,
              normalization, output_name, output_kind, classes, ignore_id, opset, resize,
              checkpoint, info):
    height, width = size
    if output_kind == "class_map":
        out = {"name": output_name, "shape": [1, height, width], "dtype": "uint8",
               "meaning": "class_map"}
    else:
        out = {"name": output_name, "shape": [1, len(classes), height, width], "dtype": "float32",
               "meaning": "logits"}
    return {
        "schema_version": manifest_mod.SCHEMA_VERSION,
        "arch": arch,
        "task": "segmentation",
        "artifact": {"file": os.path.basename(output), "format": "onnx",
                     "sha256": manifest_mod.sha256_file(output)},
        "input": {
            "name": input_name, "shape": input_shape, "dtype": input_dtype,
            "layout": "NHWC" if input_format == "frame" else "NCHW",
            "color_order": color_order if input_format == "frame" else "RGB",
            "normalization": {"in_graph": input_format == "frame",
                              "scale": float(normalization["scale"]),
                              "mean": [float(v) for v in normalization["mean"]],
                              "std": [float(v) for v in normalization["std"]]},
            "resize": resize,
        },
        "outputs": [out],
        "classes": classes,
        "ignore_id": ignore_id,
        "precision": "fp32",
        "opset": opset,
        "source_checkpoint": {"path": os.path.abspath(checkpoint) if checkpoint else None,
                              "sha256": info.get("sha256"), "layout": info.get("layout"),
                              "trained": bool(checkpoint)},
        "toolchain": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def entry():
    sys.exit(run_cli(main, prog="rt-export"))


if __name__ == "__main__":
    entry()
