"""The whole INT8 export: FP32 ONNX (+ manifest) -> calibrated INT8 QDQ ONNX + manifest.

Calibration (calib.ranges), quantization (calib.qdq) and the accuracy cost against FP32
(calib.accuracy) put together, plus TensorRT's calibration files for the ``trt`` flavor
(their format: runtime/plan/calibration_cache.py). Nothing half-done is left behind on failure.
"""
import os
import shutil
import time

from calib import accuracy
from calib.qdq import (bounds_indices, check_keep_fp32, default_opset, derived_manifest, flavor_options,
                       load, load_fp32_source, manifest_keep_fp32, prepare, quantize)
from runtime.errors import UserError

# Calibration-cache header when no --trt-version is given: the JetPack release of that opset.
DEFAULT_TRT_VERSIONS = {13: "8.2.1", 17: "8.5.2"}


def _log_default(message):
    pass


def _default_trt_version(opset):
    return DEFAULT_TRT_VERSIONS.get(opset, "8.5.2" if opset >= 17 else "8.2.1")


class Int8Options(object):
    """How :func:`export_int8` calibrates, quantizes and gates (rt-export --precision int8's flags).
    A plain class, not a dataclass: calib/ runs on the device's Python 3.6 too.

    count: Calibration images drawn from the calibration source.
    seed: Seed of the draw (and of the generated scenes of ``calib='synthetic'``).
    method: Range estimate: 'percentile', 'minmax' or 'entropy' (calib.ranges.check_method).
    flavor: 'cpu' (U8S8 QDQ for ONNX Runtime on x86) or 'trt' (TensorRT's symmetric S8S8 QDQ).
    keep_fp32: Node names left in FP32, plus the outlier head an outlier model's manifest lists
        (calib.qdq.manifest_keep_fp32).
    max_drop: Largest accepted drop (mIoU pp with ``eval_data``, else 100 x disagreement with FP32 on
        generated scenes); above it the layers that cost most stay in FP32 until it is not
        (calib.accuracy.search_keep_fp32). None: measure only.
    eval_data: Held-out Cityscapes-format folder the drop is measured on (None: agreement on scenes).
    eval_split: Split of ``eval_data`` the drop is measured on.
    agreement_images: Generated scenes the FP32 agreement is measured on when there is no ``eval_data``.
    trt_version: TensorRT version of the ``trt`` flavor's calibration cache header (None: the manifest's
        target, else the JetPack release of the opset).
    fp32_copy: Where the ``trt`` flavor copies the FP32 model its calibration files are for (None:
        ``<stem>.fp32.onnx``).
    check_latency: Time FP32 against INT8 on this machine (``cpu`` flavor) and record the ratio.
    progress: Show progress bars.
    log: Receives each progress line.
    warn: Receives the calibration source's warnings (None: a line on stderr).
    """

    def __init__(self, count=500, seed=0, method="percentile", flavor="cpu", keep_fp32=(), max_drop=None,
                 eval_data=None, eval_split="val", agreement_images=8, trt_version=None, fp32_copy=None,
                 check_latency=True, progress=True, log=_log_default, warn=None):
        self.count = count
        self.seed = seed
        self.method = method
        self.flavor = flavor
        self.keep_fp32 = keep_fp32
        self.max_drop = max_drop
        self.eval_data = eval_data
        self.eval_split = eval_split
        self.agreement_images = agreement_images
        self.trt_version = trt_version
        self.fp32_copy = fp32_copy
        self.check_latency = check_latency
        self.progress = progress
        self.log = log
        self.warn = warn

    def check(self):
        """Values a user can get wrong, one line each, before any work (rt-export runs it
        before its FP32 export too)."""
        from calib.ranges import check_method
        check_method(self.method)
        flavor_options(self.flavor)
        if self.max_drop is not None and not 0 <= self.max_drop <= 100:  # NaN too: it would turn the gate off
            raise UserError("--max-drop must be a finite number from 0 to 100 (got {})".format(self.max_drop))


def export_int8(fp32_onnx, output, calib, options=None):
    """FP32 ONNX (+ manifest) -> INT8 QDQ ONNX ``output`` + manifest. Returns the manifest.

    calib: folder / glob / video / 'synthetic' (see calib.images); ``options`` an
    :class:`Int8Options` (None: its defaults). For the ``trt`` flavor, also writes
    ``<stem>.calib`` (TensorRT's native cache for ``options.trt_version``) and
    ``<stem>.amax.json`` (``tensor.dynamic_range`` table), both for the FP32 model
    ``options.fp32_copy`` (a copy of ``fp32_onnx`` with its manifest) and tagged with its sha256.
    """
    options = options or Int8Options()
    count, seed, method, flavor = options.count, options.seed, options.method, options.flavor
    keep_fp32, max_drop, log, progress = options.keep_fp32, options.max_drop, options.log, options.progress
    from calib.images import CalibrationImages
    from calib.ranges import collect_ranges
    from runtime.artifacts import publish, staging
    from runtime.core_preprocess import Preprocessor

    options.check()
    output = str(output)
    fp32_manifest = load_fp32_source(fp32_onnx, output, "INT8")
    started = time.time()
    written = []  # removed again when anything fails: nothing half-done is left behind
    with staging(output, "int8") as folder:
        try:
            prepared = prepare(fp32_onnx, os.path.join(folder, "prepared.onnx"))
            prepared_model = load(prepared)
            keep_fp32 = check_keep_fp32(prepared_model, list(keep_fp32 or ()))
            keep_fp32 += manifest_keep_fp32(fp32_manifest, prepared_model, keep_fp32, log)

            images = CalibrationImages(calib, count=count, seed=seed, warn=options.warn,
                                       synthetic_size=fp32_manifest.input.size)
            pre = Preprocessor(fp32_manifest.input)
            log("calibrating on {} image(s) from {} ({}, seed {})".format(
                len(images), calib, method, seed))
            ranges = collect_ranges(prepared, images.tensors(pre), fp32_manifest.input.name,
                                    method=method, total=len(images), progress=progress,
                                    workdir=folder, log=log)
            calibration = {"method": method, "seed": int(seed)}
            calibration.update(images.info())
            calibration["tensors"] = len(ranges)
            log("calibrated {} tensors on {} image(s)".format(len(ranges), calibration["images"]))

            staged = os.path.join(folder, "int8.onnx")
            info = quantize(prepared_model, staged, ranges, flavor, keep_fp32, workdir=folder)
            measure = accuracy.Measure(fp32_onnx, eval_data=options.eval_data, split=options.eval_split,
                                       images=options.agreement_images, progress=progress)
            result = measure(staged)
            log("INT8 ({}): {}".format(flavor, accuracy.describe(result)))
            search = None
            if max_drop is not None and not result["drop"] <= max_drop:  # a NaN drop fails too
                log("drop {:.3f} > --max-drop {:.3f}: searching layers to keep in FP32".format(
                    result["drop"], max_drop))
                search = accuracy.search_keep_fp32(
                    prepared_model, ranges, flavor, measure, max_drop, keep_fp32=keep_fp32,
                    first=result, staged=staged, workdir=folder, progress=progress, log=log)
                info = search.pop("info")
                result = search.pop("result")
                keep_fp32 = search["keep_fp32"]
                log("INT8 ({}) with {} layer(s) in FP32: {}".format(
                    flavor, len(keep_fp32), accuracy.describe(result)))
            latency = None
            if flavor == "cpu" and options.check_latency:
                latency = accuracy.latency_ratio(fp32_onnx, staged)
                log("latency on this machine (ONNX Runtime CPU, {} threads, median of {} "
                    "interleaved runs, load average {}): FP32 {:.1f} ms, INT8 {:.1f} ms "
                    "(x{:.2f})".format(latency["threads"], latency["runs"],
                                       (latency["load_average"] or ["?"])[0], latency["fp32_ms"],
                                       latency["int8_ms"], latency["ratio"]))
            derived = derived_manifest(fp32_manifest, staged, "int8")
            if search is not None:
                info["search"] = search
            if latency is not None:
                info["latency_check"] = latency
            if flavor == "trt":
                calibration["tensorrt"] = _write_trt_files(
                    fp32_onnx, fp32_manifest, output, ranges, calibration, options.trt_version,
                    options.fp32_copy, log, written)
            calibration["seconds"] = round(time.time() - started, 1)
            manifest = derived.derive(calibration=calibration, quantization=info, accuracy=result)
            manifest = publish(staged, manifest, output)  # a failure before this leaves the previous pair untouched
            log("wrote {} and its manifest".format(output))
            return manifest
        except BaseException:
            for path in written:
                if os.path.exists(path):
                    os.remove(path)
            raise


def tensor_names(onnx_path):
    """The tensors of an ONNX model that get a range in TensorRT's calibration files: inputs and outputs of the network's
    nodes, not those only the in-graph pre- or postprocessing touches (the uint8 frame's
    cast/normalization and the logits' resize/argmax stay in FP16/FP32, as in the QDQ model).
    The files' format is runtime/plan/calibration_cache.py (the device reads them there).
    amax = max(|lowest|, |highest|) of ONNX Runtime's ranges (its own write_calibration_table
    writes max(lowest, highest), which understates the range of tensors with a larger negative
    side, and is meant for ONNX Runtime's TensorRT execution provider, not TensorRT's builder).
    """
    import onnx
    model = onnx.load(str(onnx_path), load_external_data=False)
    nodes = list(model.graph.node)
    pre, post = bounds_indices(model)
    network = [node for i, node in enumerate(nodes) if i not in pre and i not in post]
    read_by_network = set(name for node in network for name in node.input)
    read_by_post = set(name for i in post for name in nodes[i].input)
    names = []
    for node in network:
        for name in list(node.input) + list(node.output):
            if name and name not in names and (name in read_by_network or
                                               name not in read_by_post):
                names.append(name)
    return names


def _write_trt_files(fp32_onnx, fp32_manifest, output, ranges, calibration, trt_version,
                     fp32_copy, log, written):
    from runtime import manifest as manifest_mod
    from runtime.plan import calibration_cache, trt_rules
    stem = output[:-len(".onnx")]
    fp32_copy = str(fp32_copy or stem + ".fp32.onnx")
    if os.path.abspath(fp32_copy) != os.path.abspath(str(fp32_onnx)):
        tmp = fp32_copy + ".tmp"
        shutil.copyfile(str(fp32_onnx), tmp)
        written.extend([fp32_copy, manifest_mod.sidecar_path(fp32_copy)])
        os.replace(tmp, fp32_copy)
        artifact = fp32_manifest.artifact
        artifact["file"] = os.path.basename(fp32_copy)
        fp32_manifest.derive(artifact=artifact).write(fp32_copy)
    opset = fp32_manifest.opset or default_opset(load(fp32_copy))
    trt_version = trt_version or fp32_manifest.tensorrt_compat.get("target")
    version = trt_rules.full_version(trt_version) if trt_version else _default_trt_version(int(opset))
    sha = manifest_mod.sha256_file(fp32_copy)
    names = tensor_names(fp32_copy)
    amax = ranges.amax(names)
    if not amax:
        raise UserError("no calibrated tensor of {} is a tensor of {}".format(output, fp32_copy))
    written.extend([stem + ".calib", stem + ".calib.json", stem + ".amax.json"])
    cache = calibration_cache.write_calibration_cache(stem + ".calib", amax, version, sha,
                                                     ranges.method)
    table = calibration_cache.write_amax_json(stem + ".amax.json", amax, sha, ranges.method,
                                      calibration)
    log("wrote TensorRT {} calibration cache {} and amax table {} ({} tensors) for {}".format(
        version, cache, table, len(amax), fp32_copy))
    return {"version": version, "cache": os.path.basename(cache),
            "amax_json": os.path.basename(table), "fp32_onnx": os.path.basename(fp32_copy),
            "fp32_onnx_sha256": sha, "tensors": len(amax)}
