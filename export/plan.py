"""ONNX artifact -> TensorRT plan, checked against the ONNX model before it is accepted.

Runs where TensorRT and an NVIDIA GPU are (the Jetson itself): needs no torch.
After the build, the plan and the ONNX model run the same generated road scenes;
NaN/Inf or too many differing class decisions fail the build (Polygraphy-style)
and remove the plan, so a bad engine never reaches ``engines/``.
"""
import os

from runtime import manifest as manifest_mod
from runtime.errors import UserError

DEFAULT_CHECK_IMAGES = 4
# Class decisions allowed to differ from the FP32 ONNX model (per precision).
DEFAULT_MAX_MISMATCH = {"fp32": 0.001, "fp16": 0.01, "int8": 0.03}


def _default_int8_mode(onnx_manifest, calib_cache, amax_json):
    if onnx_manifest.get("precision") == "int8":
        return "qdq"
    if calib_cache:
        return "cache"
    if amax_json:
        return "ranges"
    raise UserError("--precision int8 from an FP32 ONNX needs --calib-cache or --amax-json "
                    "(made by rt-export --precision int8 --flavor trt), or export the QDQ model "
                    "with --flavor trt and build from it")


def check_images(manifest, count, seed=4242):
    """``count`` generated scenes as input tensors, preprocessed as the runtime does."""
    from runtime.data.synthetic import render_scene
    from runtime.preprocess import Preprocessor
    pre = Preprocessor(manifest["input"])
    height, width = manifest_mod.input_hw(manifest)
    return [pre(render_scene(seed=seed, index=i, size=(height, width))[0])[0] for i in range(count)]


def compare_with_onnx(onnx_path, manifest, plan_backend, count, max_mismatch, reference=None):
    """Run the ONNX model (ONNX Runtime, CPU) and the plan on the same inputs; returns the check.

    ``reference`` may be given as a backend (tests); by default ONNX Runtime on the CPU.
    """
    from export.trt_build import check_outputs
    if reference is None:
        from runtime.backends.onnxruntime import OnnxRuntimeBackend
        reference = OnnxRuntimeBackend(onnx_path, providers=["cpu"])
    name = manifest["input"]["name"]
    worst, problems = {}, []
    for tensor in check_images(manifest, count):
        result = check_outputs(reference.run({name: tensor}), plan_backend.run({name: tensor}),
                               max_mismatch=max_mismatch)
        problems.extend(result["problems"])
        for out, stats in result["outputs"].items():
            for key, value in stats.items():
                worst.setdefault(out, {})[key] = max(value, worst.get(out, {}).get(key, value))
    return {"images": count, "max_mismatch": max_mismatch, "outputs": worst,
            "problems": sorted(set(problems)), "ok": not problems,
            "compared": "tensorrt plan vs onnxruntime-cpu on the source ONNX"}


def build_plan(onnx_path, plan_path, precision="fp16", workspace_mb=1024, timing_cache=None,
               int8_mode=None, calib_cache=None, amax_json=None, fp32_layers=(),
               check_count=DEFAULT_CHECK_IMAGES, max_mismatch=None, log=print,
               build=None, open_plan=None, reference=None):
    """Build, check and describe a plan. ``build``/``open_plan``/``reference`` are for tests.

    An outlier model's head (its manifest's ``outlier.keep_fp32``) is added to ``fp32_layers``
    of FP16 and INT8 plans, as the FP16/INT8 ONNX exports keep it in FP32."""
    from export import trt_build
    onnx_manifest = manifest_mod.load(onnx_path)
    if onnx_manifest["artifact"].get("format") != "onnx":
        raise UserError("{} is not an ONNX artifact".format(onnx_path))
    if precision == "int8":
        int8_mode = int8_mode or _default_int8_mode(onnx_manifest, calib_cache, amax_json)
    head = (onnx_manifest.get("outlier") or {}).get("keep_fp32") or []
    if precision != "fp32" and head:
        fp32_layers = tuple(fp32_layers) + tuple(n for n in head if n not in fp32_layers)
        log("the outlier head stays in FP32 ({} layers)".format(len(head)))
    build = build or trt_build.build_engine
    if open_plan is None:
        from runtime.backends.tensorrt import TensorRTBackend

        def open_plan(path, manifest):
            return TensorRTBackend(path, manifest=manifest)
    log("building {} ({}) from {}".format(plan_path, precision, onnx_path))
    info = build(onnx_path, plan_path, precision=precision, workspace_mb=workspace_mb,
                 timing_cache=timing_cache, int8_mode=int8_mode or "qdq",
                 calib_cache=calib_cache, amax_json=amax_json, fp32_layers=tuple(fp32_layers))
    data = trt_build.plan_manifest(onnx_manifest, plan_path, info)
    try:
        backend = open_plan(plan_path, data)
        try:
            limit = DEFAULT_MAX_MISMATCH[precision] if max_mismatch is None else max_mismatch
            log("checking the plan against {} on {} generated scenes".format(onnx_path, check_count))
            check = compare_with_onnx(onnx_path, onnx_manifest, backend, check_count, limit,
                                      reference=reference)
        finally:
            backend.close()
    except Exception:
        _remove(plan_path)
        raise
    if not check["ok"]:
        _remove(plan_path)
        raise UserError("the plan failed its check against the ONNX model ({}); {} removed".format(
            "; ".join(check["problems"][:3]), plan_path))
    data["post_build_check"] = check
    path = manifest_mod.write(plan_path, data)
    log("wrote {} and {}".format(plan_path, path))
    return data


def _remove(path):
    if os.path.exists(str(path)):
        os.remove(str(path))
