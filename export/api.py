"""The export library: checkpoint -> verified ONNX artifact + manifest, and its reduced-precision forms.

mmdeploy-style: plain arguments and an options object (ReducedOptions, ManifestOptions) in,
manifests out; ``export/cli.py`` (rt-export) only parses arguments and calls these. Used by the
forecast bundle export, training, benchmarks and tests.
"""
import dataclasses
import datetime
import os
import platform
from typing import Any, Callable, Dict, List, Optional, Sequence

from runtime import manifest as manifest_mod
from runtime.artifacts import check_artifact_output, publish, staging
from runtime.errors import UserError, first_line
from runtime.manifest import Manifest
from runtime.sizes import split_pair

DEFAULT_OPSET = 17


MAX_SIDE = 8192
# A conservative estimate (not a measurement) of the memory an export, parity gate or training
# step takes per input pixel (float activations of the encoder and decoder): a size the
# machine cannot hold is refused before a 30 GB allocation kills the run.
BYTES_PER_PIXEL = 1024


def physical_memory():
    """Bytes of RAM on this machine (None when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_size(text, flag="--size"):
    """'256x512' -> (256, 512); both multiples of 32 (the network's output stride), at most
    MAX_SIDE a side and no more pixels than this machine's memory holds."""
    pair = split_pair(text)
    if pair is None:
        raise UserError("malformed {} {!r}: expected HEIGHTxWIDTH, e.g. 256x512".format(flag, text))
    height, width = pair
    if height < 64 or width < 64 or height % 32 or width % 32:
        raise UserError("{} {}x{}: height and width must be multiples of 32 and at least 64"
                        .format(flag, height, width))
    memory = physical_memory()
    if height > MAX_SIDE or width > MAX_SIDE or (memory and height * width * BYTES_PER_PIXEL > memory):
        raise UserError("{} {}x{}: too large for this machine (at most {} a side and about {} "
                        "pixels with {:.0f} GB of memory)".format(
                            flag, height, width, MAX_SIDE,
                            (memory or 0) // BYTES_PER_PIXEL, (memory or 0) / 1e9))
    return height, width


def check_gates(min_agreement=None, max_drop=None, calib_count=None, parity_images=None):
    """The export's gates and counts, before any work: a NaN or out-of-range value would switch
    a gate off silently (every comparison with NaN is false), so each must be a finite number
    in its range; a gate is never disabled by a value."""
    import math
    if min_agreement is not None and not (isinstance(min_agreement, (int, float))
                                          and math.isfinite(min_agreement) and 0 < min_agreement <= 1):
        raise UserError("--min-agreement must be a share in (0, 1], e.g. 0.999 (got {})".format(min_agreement))
    if max_drop is not None and not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop)
                                     and 0 <= max_drop <= 100):
        raise UserError("--max-drop must be a finite number from 0 to 100 (got {})".format(max_drop))
    if calib_count is not None and not 1 <= calib_count <= 100000:
        raise UserError("--calib-count must be from 1 to 100000 images (got {})".format(calib_count))
    if parity_images is not None and not 1 <= parity_images <= 1000:
        raise UserError("--parity-images must be from 1 to 1000 (got {})".format(parity_images))


def check_target(trt_version, opset=None, flavor=None, precision="fp32"):
    """--trt-version is the one knob for the target: the version, the opsets it reads and the
    INT8 flavor it can run, one line each, before any work (None: no target, nothing to check)."""
    if trt_version is None:
        return
    from runtime.plan import trt_rules
    low, high = trt_rules.OPSET_RANGE[trt_rules.family(trt_version)]  # one line for unknown versions
    if opset is not None and not low <= opset <= high:
        raise UserError("--opset {}: TensorRT {} reads opsets {}..{}".format(opset, trt_version, low, high))
    if flavor == "cpu" and precision == "int8":
        raise UserError("--flavor cpu (U8S8 QDQ for ONNX Runtime on x86) is not TensorRT-legal: "
                        "use --flavor trt with --trt-version")


def export(arch, checkpoint, size, output, opset=None, input_format="frame",
           color_order="BGR", output_kind="class_map", resize="stretch", parity_images=4,
           min_agreement=0.999, trt_version=None, dla=False, log=print, batch=1):
    """The whole export: load, export, check, parity gate, manifest. Returns the Manifest.

    ``dla``: the DLA form for ``trt_version`` (resizes with constant integer scales, which
    TensorRT's DLA runs) and its per-layer placement in the manifest (tensorrt_compat.dla).
    ``batch``: frames one inference takes (static; rt-export --batch N, for N cameras)."""
    from export import checkpoints, models, onnx_export

    check_gates(min_agreement=min_agreement, parity_images=parity_images)
    check_target(trt_version, opset)
    check_artifact_output(output, inputs=[checkpoint], kinds=(".onnx",))  # before any work
    if dla and trt_version is None:
        raise UserError("--dla needs --trt-version: DLA's rules differ per TensorRT version")
    opset = opset or onnx_export.default_opset(trt_version)
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
                        min_agreement=min_agreement, trt_version=trt_version, dla=dla, log=log,
                        batch=batch)


def export_model(model, info, arch, checkpoint, size, output, opset=DEFAULT_OPSET,
                 input_format="frame", color_order="BGR", output_kind="class_map",
                 resize="stretch", parity_images=4, min_agreement=0.999, trt_version=None,
                 dla=False, log=print, batch=1):
    """Export a loaded model: ONNX, checks, parity gate, manifest. Returns the Manifest.
    ``batch``: frames one inference takes (static first dimension of every tensor)."""
    from export import onnx_export, parity
    from export.classes import IGNORE_ID, cityscapes_classes

    if dla and trt_version is None:
        raise UserError("--dla needs --trt-version: DLA's rules differ per TensorRT version")
    model.eval()
    classes = info.get("classes") or cityscapes_classes()
    normalization = info.get("normalization") or model.normalization
    output_name = None
    if input_format == "deepstream":  # float NCHW RGB as nvinfer feeds it (export/deepstream_form.py)
        from export.deepstream_form import OUTPUT_NAME, deepstream_model
        model, normalization = deepstream_model(model, normalization)
        input_format, color_order, output_kind = "tensor", "RGB", "logits"
        output_name = OUTPUT_NAME
    form = onnx_export.io_form(trt_version)
    wrapper = onnx_export.DeployWrapper(model, normalization, input_format=input_format,
                                        color_order=color_order, output_kind=output_kind,
                                        form=form)

    num_outputs = getattr(model, "num_classes", None)
    if num_outputs is not None and int(num_outputs) != len(classes):
        raise UserError("the checkpoint names {} classes but the network has {} output channels: "
                        "fix the checkpoint's meta.classes".format(len(classes), num_outputs))
    batch = int(batch)
    if not 1 <= batch <= MAX_BATCH:
        raise UserError("--batch {}: use 1..{} frames per inference".format(batch, MAX_BATCH))
    untrained = list(info.get("new_heads") or [])
    if untrained:
        log("WARNING: {} loaded without weights for {}: exporting them UNTRAINED (recorded in the "
            "manifest)".format(checkpoint, ", ".join(untrained)))
    check_artifact_output(output, inputs=[checkpoint], kinds=(".onnx",))
    with staging(output, "onnx") as work:
        staged = os.path.join(work, os.path.basename(output))
        log("exporting {} at {}x{}{} to ONNX opset {}".format(
            arch, size[0], size[1], " batch {}".format(batch) if batch > 1 else "", opset))
        with _dla_form(dla):
            input_name, output_name, input_shape, input_dtype = onnx_export.export_onnx(
                wrapper, size, staged, opset=opset, input_format=input_format,
                output_name=output_name, batch=batch)
        written = _checked(onnx_export.check_model, staged, opset)
        log("exported (opset {}, {:.1f} MB)".format(written, os.path.getsize(staged) / 1e6))
        compat = _trt_compat(staged, trt_version, log)
        if dla:
            from runtime.plan import dla as dla_rules
            placed = dla_rules.placement(staged, trt_version, "fp16")
            compat["dla"] = placed.to_dict()
            log("DLA placement (FP16 plan): {} layers on DLA in {} subgraph(s), {} on the GPU".format(
                len(placed.on_dla), placed.subgraphs, len(placed.on_gpu)))

        manifest = Manifest.from_dict(build_manifest(arch, staged, size, checkpoint, info, ManifestOptions(
            input_name=input_name, input_shape=input_shape, input_dtype=input_dtype, output_name=output_name,
            normalization=normalization, classes=classes, ignore_id=IGNORE_ID, opset=opset,
            input_format=input_format, color_order=color_order, output_kind=output_kind, resize=resize,
            class_map_dtype=form.class_map_dtype)), manifest_mod.sidecar_path(output))
        changes = {"tensorrt_compat": dict(compat, io_form=form.name)}
        if untrained:
            source = manifest.source_checkpoint
            source.update(trained=False, untrained_parts=untrained)
            changes["source_checkpoint"] = source
        manifest = manifest.derive(**changes)
        if wrapper.outlier_head:  # the only head a base checkpoint lacks
            manifest = _add_outlier(manifest, staged, size, trained=not untrained)
        log("parity gate: PyTorch vs ONNX Runtime on {} generated scenes".format(parity_images))
        from runtime.plan.check_inputs import batched
        frames = batched(parity_frames(max(parity_images, batch), size, manifest.input), batch)
        try:
            figures = parity.run_parity(wrapper, staged, frames, min_agreement=min_agreement)
        except parity.ParityError as exc:
            raise UserError(str(exc) + "; nothing written ({} is unchanged)".format(output))
        figures["images"] = sum(len(array) for array in frames)
        log("parity: argmax agreement {:.4%}, max abs error {:.2e}, max rel error {:.2e}".format(
            figures["argmax_agreement"], figures["max_abs_error"], figures["max_rel_error"]))
        if "outlier_max_abs_error" in figures:
            log("parity: outlier score max abs error {:.2e}".format(figures["outlier_max_abs_error"]))
        manifest = publish(staged, manifest.derive(parity=figures), output)
    log("wrote {} and its manifest {}".format(output, manifest_mod.sidecar_path(output)))
    return manifest


def _dla_form(dla):
    """The context the DLA form is traced in (constant-scale resizes), or nothing."""
    import contextlib
    from export.models.blocks import constant_scale_resizes
    return constant_scale_resizes() if dla else contextlib.suppress()


OUTLIER_DEFAULT_THRESHOLD = 0.5


MAX_BATCH = 64  # frames per inference: more cameras than a vehicle carries


def _add_outlier(manifest, output, size, trained):
    """The outlier composition: a second output and how to read it (task 'outlier').
    Returns the new Manifest.

    ``keep_fp32`` names the outlier head's nodes, which an INT8 export leaves unquantized;
    ``head_trained``: whether the checkpoint had weights for it.
    """
    from export.onnx_export import OUTLIER_OUTPUT
    height, width = size
    score = {"name": OUTLIER_OUTPUT, "shape": [manifest.batch, height, width], "dtype": "float32",
             "meaning": "outlier_score"}
    return manifest.derive(
        task="outlier", outputs=[out.to_dict() for out in manifest.outputs] + [score],
        outlier={"default_threshold": OUTLIER_DEFAULT_THRESHOLD, "score": "1 - P(inlier)",
                 "output": OUTLIER_OUTPUT, "keep_fp32": _head_nodes(output, "logits_conf"),
                 "head_trained": trained})


def _head_nodes(onnx_path, module):
    """Names of the ONNX nodes the exporter made from ``module`` (e.g. /model/logits_conf/...)."""
    import onnx
    graph = onnx.load(onnx_path, load_external_data=False).graph
    tag = "/{}/".format(module)
    return [node.name for node in graph.node if tag in node.name]


def _trt_compat(path, trt_version, log):
    """The static TensorRT check of an exported graph (a UserError when the target rejects it)."""
    from runtime.plan import trt_rules
    compat = trt_rules.compat_block(path, trt_version)
    log("TensorRT parsers that accept it (static check): {}".format(
        ", ".join(compat["legal"]) or "none"))
    return compat


def _checked(check, path, opset):
    try:
        return check(path, opset)
    except Exception as exc:
        raise UserError("exported model failed the ONNX check: {}".format(first_line(exc)))


def parity_frames(count, size, spec):
    """``count`` generated road scenes, preprocessed exactly as the runtime will for the
    input ``spec`` (a runtime.manifest.Input)."""
    from export.scenes import render_scene
    from runtime.core_preprocess import Preprocessor
    pre = Preprocessor(spec)
    frames = []
    for index in range(count):
        image = render_scene(seed=12345, index=index, size=size)[0]
        frames.append(pre(image)[0])
    return frames


def toolchain_versions():
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


@dataclasses.dataclass
class ManifestOptions:
    """What :func:`build_manifest` records about an exported segmentation graph."""

    input_name: str
    """The graph's input tensor."""
    input_shape: List[int]
    """Its static shape; the first dimension is the batch (one output per frame)."""
    input_dtype: str
    """Its element type ('uint8' frames, 'float32' tensors)."""
    output_name: str
    """The graph's (first) output tensor."""
    normalization: Dict[str, Any]
    """{'scale', 'mean', 'std'} the network was trained with."""
    classes: List[Dict[str, Any]]
    """The class table ({'id', 'name', 'color'} each)."""
    ignore_id: int
    """Label id of pixels no class covers."""
    opset: int
    """The ONNX opset written."""
    input_format: str = "frame"
    """'frame' (NHWC, normalization in the graph) or 'tensor' (normalized NCHW RGB)."""
    color_order: str = "BGR"
    """Channel order of 'frame' inputs."""
    output_kind: str = "class_map"
    """'class_map' (argmax in the graph) or 'logits'."""
    resize: str = "stretch"
    """How the runtime fits frames of another size (runtime.manifest.RESIZE_MODES)."""
    class_map_dtype: str = "uint8"
    """Element type of a class map output (the TensorRT I/O form's, export.onnx_export.io_form)."""


def build_manifest(arch, output, size, checkpoint, info, options):
    """The manifest dict of the exported ``output`` of ``arch`` at ``size`` (height, width) from
    ``checkpoint`` (None: untrained; ``info`` its load_checkpoint metadata); ``options`` a
    :class:`ManifestOptions` describing the graph's input and output."""
    input_shape, input_format, output_kind = options.input_shape, options.input_format, options.output_kind
    classes, normalization, output_name = options.classes, options.normalization, options.output_name
    height, width = size
    batch = input_shape[0]  # one output per frame of the batch
    if output_kind == "class_map":
        out = {"name": output_name, "shape": [batch, height, width], "dtype": options.class_map_dtype,
               "meaning": "class_map"}
    else:
        out = {"name": output_name, "shape": [batch, len(classes), height, width], "dtype": "float32",
               "meaning": "logits"}
    return {
        "schema_version": manifest_mod.SCHEMA_VERSION,
        "arch": arch,
        "task": "segmentation",
        "artifact": {"file": os.path.basename(output), "format": "onnx",
                     "sha256": manifest_mod.sha256_file(output)},
        "input": {
            "name": options.input_name, "shape": input_shape, "dtype": options.input_dtype,
            "layout": "NHWC" if input_format == "frame" else "NCHW",
            "color_order": options.color_order if input_format == "frame" else "RGB",
            "normalization": {"in_graph": input_format == "frame",
                              "scale": float(normalization["scale"]),
                              "mean": [float(v) for v in normalization["mean"]],
                              "std": [float(v) for v in normalization["std"]]},
            "resize": options.resize,
        },
        "outputs": [out],
        "classes": classes,
        "ignore_id": options.ignore_id,
        "precision": "fp32",
        "opset": options.opset,
        "source_checkpoint": {"path": os.path.abspath(checkpoint) if checkpoint else None,
                              "sha256": info.get("sha256"), "layout": info.get("layout"),
                              "trained": bool(checkpoint)},
        "toolchain": toolchain_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclasses.dataclass
class ReducedOptions:
    """How :func:`export_reduced` exports, calibrates and gates (rt-export's flags for fp16/int8)."""

    calib: Optional[str] = None
    """int8: representative frames (folder, glob, video or 'synthetic'); required for int8."""
    calib_count: int = 500
    """int8: calibration images drawn from ``calib``."""
    calib_method: str = "percentile"
    """int8: range estimate ('percentile', 'minmax' or 'entropy')."""
    calib_seed: int = 0
    """int8: seed of the calibration draw."""
    flavor: Optional[str] = None
    """int8: 'cpu' (U8S8 QDQ for ONNX Runtime on x86) or 'trt' (TensorRT's S8S8 QDQ); None: 'trt'
    with a ``trt_version``, else 'cpu' (as rt-export)."""
    keep_fp32: Sequence[str] = ()
    """Node names left in FP32."""
    max_drop: Optional[float] = None
    """Largest accepted accuracy drop against FP32 (pp); above it layers stay in FP32 until it is
    not. None: measure only."""
    eval_data: Optional[str] = None
    """Held-out Cityscapes-format folder the drop is measured on (None: agreement on scenes)."""
    trt_version: Optional[str] = None
    """TensorRT version the artifact is for (I/O form, default opset, static check)."""
    opset: Optional[int] = None
    """ONNX opset (None: the default of ``trt_version``)."""
    input_format: str = "frame"
    """'frame' (uint8 NHWC, normalization in the graph), 'tensor' or 'deepstream'."""
    color_order: str = "BGR"
    """Channel order of 'frame' inputs."""
    output_kind: str = "class_map"
    """'class_map' (argmax in the graph) or 'logits'."""
    resize: str = "stretch"
    """How the runtime fits frames of another size (runtime.manifest.RESIZE_MODES)."""
    parity_images: int = 4
    """Generated scenes of the FP32 parity gate (PyTorch vs ONNX Runtime)."""
    min_agreement: float = 0.999
    """Least argmax agreement the FP32 parity gate accepts."""
    progress: bool = True
    """Show progress bars."""
    log: Callable[[str], None] = print
    """Receives each progress line."""


def export_reduced(arch, checkpoint, size, output, precision, options=None):
    """fp16 / int8 (``precision``): the parity-gated FP32 export into a temporary folder, then
    calib/. ``options``: a :class:`ReducedOptions` (None: its defaults). Returns the Manifest of
    ``output``."""
    options = options or ReducedOptions()
    calib, max_drop, keep_fp32 = options.calib, options.max_drop, options.keep_fp32
    progress, log = options.progress, options.log
    if precision == "int8" and not calib:
        raise UserError("--precision int8 needs --calib: a folder, glob or video of "
                        "representative frames ('synthetic' for generated scenes)")
    if precision == "fp16" and calib:
        raise UserError("--calib only applies to --precision int8")
    check_gates(min_agreement=options.min_agreement, max_drop=max_drop, calib_count=options.calib_count,
                parity_images=options.parity_images)
    flavor = options.flavor or ("trt" if options.trt_version is not None else "cpu")
    check_target(options.trt_version, options.opset, flavor, precision)
    int8 = None
    if precision == "int8":
        from calib.int8 import Int8Options
        int8 = Int8Options(count=options.calib_count, seed=options.calib_seed, method=options.calib_method,
                           flavor=flavor, keep_fp32=list(keep_fp32), max_drop=max_drop,
                           eval_data=options.eval_data, trt_version=options.trt_version, progress=progress,
                           log=log)
        int8.check()  # before the FP32 export, not minutes after it
    check_artifact_output(output, inputs=[checkpoint], kinds=(".onnx",))
    with staging(output, "fp32") as work:
        fp32 = os.path.join(work, os.path.basename(output)[:-len(".onnx")] + ".fp32.onnx")
        export(arch, checkpoint, size, fp32, opset=options.opset, input_format=options.input_format,
               color_order=options.color_order, output_kind=options.output_kind, resize=options.resize,
               parity_images=options.parity_images, min_agreement=options.min_agreement,
               trt_version=options.trt_version, log=log)
        if int8 is not None:
            from calib.int8 import export_int8
            return export_int8(fp32, output, calib, int8)
        from calib.fp16 import export_fp16
        return export_fp16(fp32, output, keep_fp32=list(keep_fp32), max_drop=max_drop,
                           eval_data=options.eval_data, progress=progress, log=log)
