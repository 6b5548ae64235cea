"""Forecast bundles: an F2F checkpoint + its single-level SwiftNet -> three ONNX stages + forecast.json.

The contract is docs/forecast-bundle.md. Stages:

- ``features``: frame (uint8 NHWC BGR) -> SPP features, standardized in the graph with the
  training-set statistics the forecaster was trained with;
- ``f2f``: the P past frames' standardized features, concatenated oldest first -> the
  standardized features at t + horizon (deformable convs in the chosen ONNX form);
- ``decoder``: standardized features -> class map (or logits) at the input size.

Parity gate: a generated sequence goes through PyTorch and through the ONNX stages chained
as the runtime chains them; every stage's error and the forecast's class-map agreement are
recorded, and the export fails below ``min_agreement``. INT8 bundles quantize the features
and decoder stages (calibrated on frames, and on the features of those frames); FP16 bundles
convert the same two stages to FP16 (in-graph pre/postprocessing stays FP32, as in
calib/fp16.py). In both the F2F stage stays FP32 (deformable sampling positions are
sensitive and it costs little), and the forecast's agreement with FP32 is recorded.
"""
import dataclasses
import datetime
import os
import shutil
import tempfile
import warnings
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch import nn

from runtime import compare
from runtime import manifest as manifest_mod
from runtime.artifacts import STAGING_PREFIX, clean_stale
from runtime.jsonfile import chmod_default
from runtime.errors import UserError, first_line
from runtime.manifest import Manifest

BUNDLE_ARCH = "swiftnet-rn18-f2f"
BUNDLE_FILE = "forecast.json"
STAGE_FILES = {"features": "features.onnx", "f2f": "f2f.onnx", "decoder": "decoder.onnx"}
FORECASTER_ARCHS = ("f2f-8", "f2f-8-conv")


class FeaturesStage(nn.Module):
    """uint8 NHWC frame -> standardized SPP features (normalization and statistics folded in)."""

    def __init__(self, model, normalization, mean, std, color_order="BGR"):
        super().__init__()
        from export.onnx_export import frame_coefficients
        self.model = model
        mul, add = frame_coefficients(normalization)
        self.register_buffer("mul", mul, persistent=False)
        self.register_buffer("add", add, persistent=False)
        self.bgr = color_order == "BGR"
        self.register_buffer("f_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("f_inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, frame):
        from export.onnx_export import frame_to_input
        x = frame_to_input(frame, self.mul, self.add, self.bgr)
        return (self.model.encode(x) - self.f_mean) * self.f_inv_std


class DecoderStage(nn.Module):
    """Standardized features -> class map (uint8 argmax) or logits at ``size``."""

    def __init__(self, model, mean, std, size, output_kind="class_map", form=None):
        super().__init__()
        from export.onnx_export import DEFAULT_IO_FORM, IO_FORMS
        self.model, self.size, self.output_kind = model, tuple(size), output_kind
        self.form = form or IO_FORMS[DEFAULT_IO_FORM]
        self.register_buffer("f_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("f_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, features):
        logits = self.model.decode(features * self.f_std + self.f_mean, self.size)
        if self.output_kind == "logits":
            return logits
        from export.onnx_export import class_ids
        return class_ids(logits, self.form)


def _read_arch(path):
    from pathlib import Path

    from export.checkpoints import _torch_load
    obj = _torch_load(Path(path), False)
    arch = obj.get("arch") if isinstance(obj, dict) else None
    if arch not in FORECASTER_ARCHS:
        raise UserError("{} is not a forecaster checkpoint (arch {!r}; expected one of {}); train one with "
                        "rt-train --arch f2f-8".format(path, arch, ", ".join(FORECASTER_ARCHS)))
    return arch


def load_forecaster(path, features_checkpoint=None, log=print):
    """(F2F model, single-level model, forecast meta, info of both) from the checkpoints."""
    from export import checkpoints
    arch = _read_arch(path)
    f2f, info = checkpoints.load_checkpoint(arch, path)
    meta = (info.get("metadata") or {}).get("forecast")
    if not meta:
        raise UserError("{}: no 'forecast' block in its metadata (not written by rt-train --arch {})".format(
            path, arch))
    recorded = meta["features_checkpoint"]
    source = features_checkpoint or recorded.get("path")
    if not features_checkpoint and source and not os.path.exists(source):
        # Moved with the repository (a clone elsewhere): look beside the forecaster checkpoint.
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(source))
        source = beside if os.path.exists(beside) else source
    if not source or not os.path.exists(source):
        raise UserError("{} was trained on the features of {}, which is not here: pass "
                        "--features-checkpoint".format(path, recorded.get("path")))
    sl, sl_info = checkpoints.load_checkpoint(meta.get("features_arch", "swiftnet-rn18-sl"), source)
    if recorded.get("sha256") and sl_info["sha256"] != recorded["sha256"]:
        raise UserError("{} was trained on the features of a checkpoint with sha256 {}..., but {} has {}...: "
                        "its forecasts would be meaningless".format(
                            path, recorded["sha256"][:12], source, sl_info["sha256"][:12]))
    log("forecaster {} ({}), features from {}".format(path, arch, source))
    return f2f.eval(), sl.eval(), meta, {"f2f": info, "features": sl_info, "arch": arch, "features_path": source}


def _export(module, inputs, path, input_names, output_names, opset):
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, tmp, dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names, do_constant_folding=True)
        from export.onnx_export import check_model
        check_model(tmp, opset)
        chmod_default(tmp)  # mkstemp makes files private; artifacts are meant to be shared
        os.replace(tmp, path)
    except UserError:
        raise
    except Exception as exc:
        raise UserError("exporting {} failed: {}".format(os.path.basename(path), first_line(exc)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _session(path):
    import onnxruntime as ort
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def parity_sequence(size, count, fps, seed=4242):
    """``count`` consecutive generated frames (BGR uint8) of one drive at ``fps``."""
    from export.scenes import render_sequence
    return [frame for frame, _, _ in render_sequence(seed, 0, length=count, size=size, fps=fps)]


def chain(run_features, run_f2f, run_decoder, frames, offsets):
    """Run the stages over consecutive ``frames`` as the runtime would: forecasts for every t
    with all past frames present. Returns (features list, [(t, future features, class map)])."""
    feats = [run_features(f) for f in frames]
    out = []
    for t in range(-min(offsets), len(frames)):
        past = np.concatenate([feats[t + o] for o in offsets], axis=1)
        future = run_f2f(past)
        out.append((t, future, run_decoder(future)))
    return feats, out


def _frame_tensor(frame):
    return np.ascontiguousarray(frame[None])


def gate(stages, sessions, frames, offsets, min_agreement):
    """PyTorch vs ONNX Runtime on a generated clip, stage by stage and chained.

    Returns (figures, the ONNX chain's forecasts [(t, features, class map)]) so that a reduced-
    precision export compares against them without running the FP32 chain again."""
    features, f2f, decoder = stages
    with torch.inference_mode():
        t_feats, t_out = chain(lambda f: features(torch.from_numpy(_frame_tensor(f))).numpy(),
                               lambda p: f2f(torch.from_numpy(p)).numpy(),
                               lambda x: decoder(torch.from_numpy(x)).numpy(), frames, offsets)
    o_feats, o_out = _onnx_chain(sessions, frames, offsets)
    figures = {"frames": len(frames), "forecasts": len(o_out),
               "features_max_abs_error": max(compare.max_abs_error(a, b) for a, b in zip(t_feats, o_feats)),
               "f2f_max_abs_error": max(compare.max_abs_error(a[1], b[1]) for a, b in zip(t_out, o_out)),
               "forecast_argmax_agreement": _forecast_agreement(t_out, o_out)}
    if not figures["forecast_argmax_agreement"] >= min_agreement:  # NaN on either side fails
        raise UserError("parity gate failed: the ONNX forecast agrees with PyTorch on {:.3%} of pixels "
                        "(< {:.3%})".format(figures["forecast_argmax_agreement"], min_agreement))
    return figures, o_out


def _stage_manifest(stage, path, arch, inp, outputs, classes, opset, precision, extra=None):
    """The Manifest of one stage artifact at ``path``."""
    from export.classes import IGNORE_ID
    from export.api import toolchain_versions
    fields = {"schema_version": manifest_mod.SCHEMA_VERSION, "arch": arch, "task": "forecast_stage",
            "stage": stage,
            "artifact": {"file": os.path.basename(path), "format": "onnx",
                         "sha256": manifest_mod.sha256_file(path)},
            "input": inp, "outputs": outputs, "classes": classes, "ignore_id": IGNORE_ID,
            "precision": precision, "opset": opset, "toolchain": toolchain_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    fields.update(extra or {})
    return Manifest.from_dict(fields, manifest_mod.sidecar_path(path))


def _features_input(name, shape):
    return {"name": name, "shape": list(shape), "dtype": "float32", "layout": "NCHW", "kind": "features"}


@dataclasses.dataclass
class BundleOptions:
    """How :func:`export_bundle` exports, quantizes and gates a bundle (rt-export's flags for
    --arch swiftnet-rn18-f2f)."""

    features_checkpoint: Optional[str] = None
    """The swiftnet-rn18-sl checkpoint the forecaster was trained on (None: the path recorded in
    the forecaster checkpoint)."""
    size: Optional[Tuple[int, int]] = None
    """(height, width) of the frames (None: the checkpoint's training size, else 256x512)."""
    opset: Optional[int] = None
    """ONNX opset (None: the default of ``trt_version``, at least the deformable form's)."""
    deform_form: Optional[str] = None
    """Deformable convolution in ONNX: 'matmul', 'grid_sample', 'gather' or 'onnx'
    (None: export.models.deform.EXPORT_DEFAULT_FORM)."""
    output_kind: str = "class_map"
    """The decoder stage's output: 'class_map' (argmax in the graph) or 'logits'."""
    color_order: str = "BGR"
    """Channel order of the uint8 frames the features stage reads."""
    resize: str = "stretch"
    """How the runtime fits frames of another size (runtime.manifest.RESIZE_MODES)."""
    precision: str = "fp32"
    """'fp32', 'fp16' or 'int8' (int8: the features and decoder stages are quantized)."""
    calib: Optional[str] = None
    """int8: representative frames (folder, glob, video or 'synthetic'); required for int8."""
    calib_count: int = 200
    """int8: calibration images drawn from ``calib``."""
    calib_method: str = "percentile"
    """int8: range estimate ('percentile', 'minmax' or 'entropy')."""
    calib_seed: int = 0
    """int8: seed of the calibration draw."""
    flavor: str = "cpu"
    """int8: 'cpu' (U8S8 QDQ for ONNX Runtime on x86) or 'trt' (TensorRT's S8S8 QDQ)."""
    parity_frames: int = 14
    """Frames of the generated clip of the parity gate (at least the history the forecaster reads)."""
    min_agreement: float = 0.999
    """Least forecast argmax agreement the parity gate (PyTorch vs ONNX Runtime) accepts."""
    trt_version: Optional[str] = None
    """The TensorRT version the stages are for: their I/O form and default opset, and every stage
    must pass that version's static check (see export.onnx_export.io_form)."""
    log: Callable[[str], None] = print
    """Receives each progress line."""


def export_bundle(checkpoint, output_dir, options=None):
    """Write the three stages, their manifests and ``forecast.json`` into ``output_dir``; the
    forecaster is ``checkpoint`` (an f2f-8 checkpoint) and ``options`` a :class:`BundleOptions`
    (None: its defaults). Returns the bundle's Manifest."""
    options = options or BundleOptions()
    opset, deform_form, precision, log = options.opset, options.deform_form, options.precision, options.log
    output_kind, color_order, resize = options.output_kind, options.color_order, options.resize
    calib, calib_count, trt_version = options.calib, options.calib_count, options.trt_version
    min_agreement, parity_frames = options.min_agreement, options.parity_frames
    from export.classes import IGNORE_ID, cityscapes_classes
    from export.models.deform import EXPORT_DEFAULT_FORM, FORM_MIN_OPSET, FORMS, set_form
    from export.onnx_export import MAX_OPSET, default_opset, io_form

    from export.api import check_gates
    check_gates(min_agreement=min_agreement, calib_count=calib_count if precision == "int8" else None)
    if not 1 <= int(parity_frames) <= 1000:
        raise UserError("parity_frames must be from 1 to 1000 (got {})".format(parity_frames))
    form = io_form(trt_version)
    deform_form = deform_form or EXPORT_DEFAULT_FORM
    if deform_form not in FORMS:
        raise UserError("--deform-form {!r}: use one of {}".format(deform_form, ", ".join(FORMS)))
    minimum = FORM_MIN_OPSET[deform_form]
    opset = opset or max(default_opset(trt_version), minimum)
    if trt_version is not None:
        from runtime.plan.trt_rules import OPSET_RANGE, family
        high = OPSET_RANGE[family(trt_version)][1]
        if minimum > high or opset > high:
            raise UserError("TensorRT {} reads opsets up to {}: the {} form of deformable convolution "
                            "needs {} (use --deform-form matmul or gather)".format(
                                trt_version, high, deform_form, max(minimum, opset)))
    if not minimum <= opset <= MAX_OPSET:
        raise UserError("--opset {} cannot express the {} form of deformable convolution (needs {}..{})".format(
            opset, deform_form, minimum, MAX_OPSET))
    if precision not in ("fp32", "fp16", "int8"):
        raise UserError("--precision {!r}: forecast bundles are exported in fp32, fp16 or int8".format(precision))
    if precision == "int8" and not calib:
        raise UserError("--precision int8 needs --calib (a folder, glob, video or 'synthetic')")
    f2f, sl, meta, info = load_forecaster(checkpoint, options.features_checkpoint, log=log)
    set_form(f2f, deform_form)
    size = tuple(options.size or meta.get("input_size") or (256, 512))
    offsets, horizon, fps = list(meta["past_offsets"]), int(meta["horizon"]), meta.get("frame_rate")
    if not fps:
        raise UserError("{}: the training frame rate is unknown (sequences without split info)".format(checkpoint))
    mean, std = meta["feature_stats"]["mean"], meta["feature_stats"]["std"]
    classes = (info["features"].get("classes") or cityscapes_classes())
    normalization = info["features"]["normalization"]
    feat_shape = [1, len(mean), size[0] // 32, size[1] // 32]
    stages = (FeaturesStage(sl, normalization, mean, std, color_order).eval(), f2f,
              DecoderStage(sl, mean, std, size, output_kind, form).eval())

    check_bundle_output(output_dir, [checkpoint, info["features_path"]])
    os.makedirs(output_dir, exist_ok=True)
    clean_stale(output_dir)  # staging folders of killed writers
    work = tempfile.mkdtemp(prefix="{}{}-bundle-".format(STAGING_PREFIX, os.getpid()), dir=output_dir)
    try:
        paths = dict((k, os.path.join(work, v)) for k, v in STAGE_FILES.items())
        frame = torch.randint(0, 256, (1, size[0], size[1], 3), dtype=torch.uint8)
        if form.frame_dtype == "float32":
            frame = frame.float()
        feats = torch.randn(feat_shape)
        past = torch.randn([1, len(offsets) * feat_shape[1]] + feat_shape[2:])
        log("exporting the features stage at {}x{} (opset {})".format(size[0], size[1], opset))
        _export(stages[0], (frame,), paths["features"], ["frame"], ["features"], opset)
        log("exporting the f2f stage ({}, deformable form {})".format(info["arch"], deform_form))
        _export(stages[1], (past,), paths["f2f"], ["past_features"], ["future_features"], opset)
        log("exporting the decoder stage ({})".format(output_kind))
        _export(stages[2], (feats,), paths["decoder"], ["features"], [output_kind], opset)

        sessions = dict((k, _session(p)) for k, p in paths.items())
        count = max(int(parity_frames), -min(offsets) + 1)
        log("parity gate: PyTorch vs ONNX Runtime on a generated clip of {} frames".format(count))
        frames = parity_sequence(size, count, fps)
        figures, fp32_forecasts = gate(stages, sessions, frames, offsets, min_agreement)
        log("parity: forecast argmax agreement {:.4%}, features max abs error {:.2e}, f2f {:.2e}".format(
            figures["forecast_argmax_agreement"], figures["features_max_abs_error"], figures["f2f_max_abs_error"]))

        frame_input = {"name": "frame", "shape": [1, size[0], size[1], 3], "dtype": form.frame_dtype,
                       "layout": "NHWC",
                       "color_order": color_order,
                       "normalization": {"in_graph": True, "scale": float(normalization["scale"]),
                                         "mean": [float(v) for v in normalization["mean"]],
                                         "std": [float(v) for v in normalization["std"]]},
                       "resize": resize}
        if output_kind == "class_map":
            decoder_out = {"name": "class_map", "shape": [1, size[0], size[1]], "dtype": form.class_map_dtype,
                           "meaning": "class_map"}
        else:
            decoder_out = {"name": "logits", "shape": [1, len(classes), size[0], size[1]], "dtype": "float32",
                           "meaning": "logits"}
        feature_out = lambda name: {"name": name, "shape": feat_shape, "dtype": "float32", "meaning": "features"}
        timing = {"past_offsets": offsets, "horizon": horizon, "frame_rate": float(fps)}
        stage_data = {
            "features": _stage_manifest("features", paths["features"], "swiftnet-rn18-sl", frame_input,
                                        [feature_out("features")], classes, opset, "fp32"),
            "f2f": _stage_manifest("f2f", paths["f2f"], info["arch"],
                                   _features_input("past_features", [1, len(offsets) * feat_shape[1]] + feat_shape[2:]),
                                   [feature_out("future_features")], classes, opset, "fp32",
                                   dict(timing, deform_form=deform_form if f2f.deformable else None)),
            "decoder": _stage_manifest("decoder", paths["decoder"], "swiftnet-rn18-sl",
                                       _features_input("features", feat_shape), [decoder_out], classes, opset,
                                       "fp32"),
        }
        if precision == "int8":
            figures["int8"] = _quantize_stages(paths, stage_data, calib, calib_count, options.calib_method,
                                               options.calib_seed, options.flavor, size, work, log)
        elif precision == "fp16":
            figures["fp16"] = _half_stages(paths, stage_data, work)
        if precision != "fp32":
            figures[precision]["forecast_agreement_vs_fp32"] = _agreement_vs_fp32(
                paths, frames, fp32_forecasts, offsets, precision, log)
        from runtime.plan import trt_rules
        for stage in list(stage_data):
            compat = dict(trt_rules.compat_block(paths[stage], trt_version), io_form=form.name)
            stage_data[stage] = stage_data[stage].derive(tensorrt_compat=compat)
            log("{} stage: TensorRT parsers that accept it (static check): {}".format(
                stage, ", ".join(compat["legal"]) or "none"))
            stage_data[stage].write(paths[stage])
        bundle = Manifest.from_dict({
            "schema_version": manifest_mod.SCHEMA_VERSION, "task": "forecast", "arch": BUNDLE_ARCH,
            "precision": precision, "stages": dict(STAGE_FILES),
            "past_offsets": offsets, "horizon": horizon, "frame_rate": float(fps),
            "feature_shape": feat_shape,
            "feature_stats": {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                              "folded_into_graph": True},
            "forecaster": {"arch": info["arch"], "kind": "deformable" if f2f.deformable else "conv",
                           "depth": int(f2f.depth), "deform_form": deform_form if f2f.deformable else None},
            "input": frame_input, "classes": classes, "ignore_id": IGNORE_ID, "opset": opset,
            "tensorrt_compat": {"target": trt_version, "io_form": form.name,
                                "legal": [f for f in trt_rules.FAMILIES
                                          if all(f in stage_data[s].tensorrt_compat["legal"] for s in STAGE_FILES)]},
            "parity": figures,
            "source_checkpoints": {
                "f2f": {"path": os.path.abspath(checkpoint), "sha256": info["f2f"]["sha256"]},
                "features": {"path": os.path.abspath(info["features_path"]), "sha256": info["features"]["sha256"]}},
            "training_metrics": (info["f2f"].get("metadata") or {}).get("metrics"),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "stage_sha256": dict((stage, manifest_mod.sha256_file(paths[stage])) for stage in STAGE_FILES),
        }, BUNDLE_FILE)
        path = publish_bundle(bundle, paths, work, output_dir)
        log("wrote forecast bundle {} (horizon {} frames = {:.2f} s at {:g} Hz)".format(
            path, horizon, horizon / float(fps), fps))
        return bundle
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_bundle_output(output_dir, inputs):
    """Refuse, before any work, a bundle folder that cannot be written safely (one line): a
    file, a system path, an input of the run inside it, or a stage, stage manifest or
    forecast.json there that is not a regular file (a folder, FIFO, device or symlink)."""
    from runtime.jsonfile import _system_path
    output_dir = str(output_dir)
    system = _system_path(output_dir)
    if system is not None:
        raise UserError("--output {} is {}, a system path: refusing to write there".format(output_dir, system))
    if os.path.lexists(output_dir) and not os.path.isdir(output_dir):
        raise UserError("--output {} exists and is not a folder: a forecast bundle is a folder".format(output_dir))
    names = [BUNDLE_FILE] + [n + suffix for n in STAGE_FILES.values() for suffix in ("", ".json")]
    for name in names:
        target = os.path.join(output_dir, name)
        if os.path.lexists(target) and (os.path.islink(target) or not os.path.isfile(target)):
            raise UserError("--output {}: {} exists and is not a regular file: refusing to replace "
                            "it".format(output_dir, target))
        for source in inputs:
            if source and os.path.exists(target) and os.path.samefile(str(source), target):
                raise UserError("--output {}: {} is an input of this run: refusing to overwrite it"
                                .format(output_dir, target))


def publish_bundle(bundle, paths, work, output_dir):
    """Publish the checked stages from ``work`` as one unit: the old forecast.json goes first
    (a kill from then on leaves a folder that no runtime opens, never a mixed bundle), then
    the stages and their manifests, then the new forecast.json, which pins each stage's
    sha256 (both runtimes check it when opening). SIGINT/SIGTERM/SIGHUP wait until it is done."""
    from runtime.artifacts import signals_held
    pending = os.path.join(work, BUNDLE_FILE + ".pending")
    bundle.write_file(pending)
    target = os.path.join(output_dir, BUNDLE_FILE)
    with signals_held():
        if os.path.lexists(target):
            os.remove(target)
        for stage, name in STAGE_FILES.items():
            for suffix in ("", ".json"):
                os.replace(paths[stage] + suffix, os.path.join(output_dir, name + suffix))
        os.replace(pending, target)
    return target


def _quantize_stages(paths, stage_data, calib, count, method, seed, flavor, size, work, log):
    """INT8 QDQ features and decoder stages in place."""
    from calib.images import CalibrationImages
    from calib.qdq import prepare, load, quantize
    from calib.ranges import collect_ranges
    from runtime.core_preprocess import Preprocessor

    fp32_features = _session(paths["features"])
    images = CalibrationImages(calib, count=count, seed=seed, synthetic_size=size)
    pre = Preprocessor(stage_data["features"].input)
    tensors = [t for t in images.tensors(pre)]
    log("calibrating the features and decoder stages on {} image(s) ({})".format(len(tensors), method))
    info = {}
    for stage, inputs in (("features", tensors),
                          ("decoder", [fp32_features.run(None, {"frame": t})[0] for t in tensors])):
        prepared = prepare(paths[stage], os.path.join(work, stage + ".prepared.onnx"))
        ranges = collect_ranges(prepared, inputs, stage_data[stage].input.name, method=method,
                                total=len(inputs), progress=False, workdir=work, log=None)
        staged = os.path.join(work, stage + ".int8.onnx")
        info[stage] = quantize(load(prepared), staged, ranges, flavor, workdir=work)
        _replace_stage(paths, stage_data, stage, staged, "int8")
        stage_data[stage] = stage_data[stage].derive(calibration={
            "source": str(calib), "images": len(inputs), "method": method, "seed": seed, "flavor": flavor})
    return {"stages": ["features", "decoder"], "fp32_stages": ["f2f"], "quantization": info}


def _half_stages(paths, stage_data, work):
    """FP16 features and decoder stages in place (calib/fp16.py's conversion)."""
    from calib import fp16, qdq
    info = {}
    for stage in ("features", "decoder"):
        prepared = qdq.load(qdq.prepare(paths[stage], os.path.join(work, stage + ".prepared.onnx")))
        half, info[stage] = fp16.convert(prepared)
        staged = os.path.join(work, stage + ".fp16.onnx")
        qdq._save(half, staged)
        _replace_stage(paths, stage_data, stage, staged, "fp16")
        stage_data[stage] = stage_data[stage].derive(fp16=info[stage])
    return {"stages": ["features", "decoder"], "fp32_stages": ["f2f"], "conversion": info}


def _replace_stage(paths, stage_data, stage, staged, precision):
    """Put the reduced-precision ``staged`` model in the stage's place; its Manifest follows."""
    os.replace(staged, paths[stage])
    artifact = stage_data[stage].artifact
    artifact["sha256"] = manifest_mod.sha256_file(paths[stage])
    stage_data[stage] = stage_data[stage].derive(artifact=artifact, precision=precision)


def _agreement_vs_fp32(paths, frames, fp32_forecasts, offsets, precision, log):
    """Share of forecast pixels on which the reduced-precision chain equals the FP32 one."""
    _, reduced = _onnx_chain(dict((k, _session(p)) for k, p in paths.items()), frames, offsets)
    agreement = _forecast_agreement(fp32_forecasts, reduced)
    log("{} forecast agrees with FP32 on {:.2%} of pixels ({} forecasts)".format(
        precision.upper(), agreement, len(reduced)))
    return agreement


def _onnx_chain(sessions, frames, offsets):
    """:func:`chain` through ONNX Runtime sessions of the three stages."""
    dtype = np.float32 if sessions["features"].get_inputs()[0].type == "tensor(float)" else np.uint8
    return chain(lambda f: sessions["features"].run(None, {"frame": _frame_tensor(f).astype(dtype)})[0],
                 lambda p: sessions["f2f"].run(None, {"past_features": p})[0],
                 lambda x: sessions["decoder"].run(None, {"features": x})[0], frames, offsets)


def _forecast_agreement(a, b):
    """Mean share of equal class-map pixels of two :func:`chain` outputs (logits: their argmax)."""
    return compare.mean_agreement([compare.class_decisions(x[2]) for x in a],
                                  [compare.class_decisions(y[2]) for y in b])
