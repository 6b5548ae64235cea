"""ONNX artifact -> TensorRT plan, checked against the ONNX model before it is accepted.

Runs where TensorRT and an NVIDIA GPU are (the Jetson itself): needs no torch and no onnx
(Python 3.6+). Before TensorRT sees the model, the graph is checked against the installed
version's parser rules (trt_rules) and the manifest's ``tensorrt_compat`` list.
After the build, the plan and the ONNX model run the same inputs (the road scenes shipped
in runtime/plan/check_frames, or the user's frames: runtime.plan.check_inputs; the scene
generator stays on the workstation); NaN/Inf or too many differing class decisions fail the build
(Polygraphy-style) and remove the plan, so a bad engine never reaches ``engines/``.
"""
import os

from runtime import compare
from runtime import manifest as manifest_mod
from runtime.artifacts import check_artifact_output, publish, staging
from runtime.errors import UserError
from runtime.manifest import Manifest
from runtime.plan.check_inputs import check_inputs, describe

DEFAULT_CHECK_IMAGES = 4
# Class decisions allowed to differ from the FP32 ONNX model (per precision).
DEFAULT_MAX_MISMATCH = {"fp32": 0.001, "fp16": 0.01, "int8": 0.03}


def _default_int8_mode(onnx_manifest, calib_cache, amax_json):
    if onnx_manifest.precision == "int8":
        return "qdq"
    if calib_cache:
        return "cache"
    if amax_json:
        return "ranges"
    raise UserError("--precision int8 from an FP32 ONNX needs --calib-cache or --amax-json "
                    "(made by rt-export --precision int8 --flavor trt), or export the QDQ model "
                    "with --flavor trt and build from it")


def compare_with_onnx(onnx_path, manifest, plan_backend, count, max_mismatch, reference=None,
                      check_images=None):
    """Run the ONNX model (ONNX Runtime, CPU) and the plan on the same inputs; returns the check.

    ``check_images``: a folder of images or a video whose first ``count`` frames are the inputs
    (default: the shipped road scenes). ``reference`` may be given as a backend (tests);
    by default ONNX Runtime on the CPU.
    """
    if reference is None:
        from runtime.backends.onnxruntime import OnnxRuntimeBackend
        reference = OnnxRuntimeBackend(onnx_path, providers=["cpu"])
    name = manifest.input.name
    worst, problems = {}, []
    inputs = check_inputs(manifest, count, check_images)
    for tensor in inputs:
        result = compare.check_outputs(reference.run({name: tensor}), plan_backend.run({name: tensor}),
                               max_mismatch=max_mismatch)
        problems.extend(result["problems"])
        for out, stats in result["outputs"].items():
            for key, value in stats.items():
                worst.setdefault(out, {})[key] = max(value, worst.get(out, {}).get(key, value))
    return {"images": len(inputs), "inputs": describe(check_images),
            "max_mismatch": max_mismatch, "outputs": worst,
            "problems": sorted(set(problems)), "ok": not problems,
            "compared": "tensorrt plan vs onnxruntime-cpu on the source ONNX"}


def build_plan(onnx_path, plan_path, precision="fp16", workspace_mb=1024, timing_cache=None,
               int8_mode=None, calib_cache=None, amax_json=None, fp32_layers=(),
               check_count=DEFAULT_CHECK_IMAGES, max_mismatch=None, check_images=None, log=print,
               build=None, open_plan=None, reference=None, dla_core=None, gpu_fallback=False):
    """Build, check and describe a plan. ``build``/``open_plan``/``reference`` are for tests.

    The check runs ``check_count`` inputs: the shipped road scenes, or the first frames of
    ``check_images`` (a folder of images or a video). ``dla_core``/``gpu_fallback``: build for
    a DLA core (runtime.plan.builder.use_dla); the plan's manifest records the placement.

    An outlier model's head (its manifest's ``outlier.keep_fp32``) is added to ``fp32_layers``
    of FP16 and INT8 plans, as the FP16/INT8 ONNX exports keep it in FP32."""
    from runtime.plan import builder
    onnx_manifest = Manifest.load(onnx_path)
    if onnx_manifest.artifact_format != "onnx":
        raise UserError("{} is not an ONNX artifact".format(onnx_path))
    if precision == "int8":
        int8_mode = int8_mode or _default_int8_mode(onnx_manifest, calib_cache, amax_json)
    head = onnx_manifest.outlier.get("keep_fp32") or []
    if precision != "fp32" and head:
        fp32_layers = tuple(fp32_layers) + tuple(n for n in head if n not in fp32_layers)
        log("the outlier head stays in FP32 ({} layers)".format(len(head)))
    build = build or builder.build_engine
    if open_plan is None:
        from runtime.backends.tensorrt import TensorRTBackend

        def open_plan(path, manifest):
            return TensorRTBackend(path, manifest=manifest)
    check_artifact_output(plan_path, inputs=[onnx_path], kinds=(".plan", ".engine", ".trt"))
    if check_images is not None and not os.path.exists(str(check_images)):
        raise UserError("--check-images {} not found (a folder of images or a video)".format(check_images))
    log("building {} ({}) from {}".format(plan_path, precision, onnx_path))
    with staging(plan_path, "plan") as work:  # a failed (re)build leaves the previous plan as it was
        staged = os.path.join(work, os.path.basename(str(plan_path)))
        info = build(onnx_path, staged, precision=precision, workspace_mb=workspace_mb,
                     timing_cache=timing_cache, int8_mode=int8_mode or "qdq",
                     calib_cache=calib_cache, amax_json=amax_json, fp32_layers=tuple(fp32_layers),
                     **({} if dla_core is None else {"dla_core": dla_core, "gpu_fallback": gpu_fallback}))
        info["plan"] = str(plan_path)
        manifest = builder.plan_manifest(onnx_manifest, staged, info)
        backend = open_plan(staged, manifest)
        try:
            limit = DEFAULT_MAX_MISMATCH[precision] if max_mismatch is None else max_mismatch
            log("checking the plan against {} on {} {}".format(onnx_path, check_count,
                                                               describe(check_images)))
            check = compare_with_onnx(onnx_path, onnx_manifest, backend, check_count, limit,
                                      reference=reference, check_images=check_images)
        finally:
            backend.close()
        if not check["ok"]:
            raise UserError("the plan failed its check against the ONNX model ({}); nothing written".format(
                "; ".join(check["problems"][:3])))
        manifest = publish(staged, manifest.derive(post_build_check=check), plan_path)
    log("wrote {} and {}".format(plan_path, manifest_mod.sidecar_path(plan_path)))
    return manifest


def build_bundle_plans(bundle, output_dir, precision="fp16", workspace_mb=1024, timing_cache=None,
                       check_count=DEFAULT_CHECK_IMAGES, check_images=None, log=print, **test_hooks):
    """A forecast bundle on TensorRT: a plan per stage in ``output_dir`` and a ``forecast.json``
    naming them. Returns the new bundle's Manifest.

    ``bundle``: an exported bundle's folder or ``forecast.json``. The F2F stage is built in FP32
    whatever ``precision`` says (its deformable sampling positions are sensitive and it costs
    little, as in the ONNX bundles); INT8 needs a bundle exported with ``--precision int8
    --flavor trt`` (its features and decoder stages carry the Q/DQ nodes).
    """
    bundle_path = manifest_mod.resolve(bundle)[1]
    source = Manifest.load(bundle_path)
    if source.task != "forecast":
        raise UserError("{} is not a forecast bundle (task {!r})".format(bundle_path, source.task))
    folder = os.path.dirname(os.path.abspath(bundle_path))
    output_dir = str(output_dir)
    if os.path.abspath(output_dir) == folder:
        raise UserError("--output {} is the bundle's own folder: give a new folder for the plans"
                        .format(output_dir))
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserError("--output {} exists and is not a folder".format(output_dir))
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        # Three plans and forecast.json are one unit: rebuilding into a used folder could leave an
        # old forecast.json beside plans of another build. A new folder keeps the old bundle intact.
        raise UserError("--output {} is not empty: give a new folder for the plans (the old bundle "
                        "stays as it is)".format(output_dir))
    if precision == "int8" and source.precision != "int8":
        raise UserError("an INT8 plan bundle needs a bundle exported with --precision int8 --flavor trt "
                        "({} is {})".format(bundle_path, source.precision))
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    stages, built, digests = {}, [], {}
    try:
        source_stages = source.stages
        for stage in sorted(source_stages):
            onnx_path = os.path.join(folder, source_stages[stage])
            plan = os.path.join(output_dir, stage + ".plan")
            stage_precision = "fp32" if stage == "f2f" and precision != "fp32" else precision
            log("stage {}: {} plan".format(stage, stage_precision))
            written = build_plan(onnx_path, plan, precision=stage_precision, workspace_mb=workspace_mb,
                                 timing_cache=timing_cache, check_count=check_count,
                                 check_images=check_images, log=log, **test_hooks)
            digests[stage] = written.artifact["sha256"]
            built.append(plan)
            stages[stage] = os.path.basename(plan)
        manifest = source.derive(
            stages=stages, precision=precision, stage_sha256=digests,  # forecast.json pins the plans
            plans={"built_from": os.path.abspath(bundle_path), "f2f_precision": "fp32"})
        path = manifest.write_bundle(output_dir)
    except BaseException:
        for plan in built:
            for item in (plan, manifest_mod.sidecar_path(plan)):
                if os.path.exists(item):
                    os.remove(item)
        if created and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise
    log("wrote forecast bundle {} (TensorRT plans)".format(path))
    return manifest


def trtexec_command(onnx_path, plan_path, precision="fp16", trt_version="8.5", workspace_mb=1024,
                    timing_cache=None, calib_cache=None, dla_core=None, gpu_fallback=False):
    """The trtexec line that builds the same plan (without our post-build check and manifest).

    Workspace: ``--workspace=N`` (MB) before 8.4, ``--memPoolSize=workspace:NM`` from 8.4. INT8
    from an amax table has no trtexec flag; a QDQ model needs only ``--int8``."""
    from runtime.backends.trt_api import parse_version
    parts = ["trtexec", "--onnx={}".format(onnx_path), "--saveEngine={}".format(plan_path)]
    if parse_version(trt_version)[:2] >= (8, 4):
        parts.append("--memPoolSize=workspace:{}M".format(int(workspace_mb)))
    else:
        parts.append("--workspace={}".format(int(workspace_mb)))
    if precision in ("fp16", "int8"):
        parts.append("--fp16")
    if precision == "int8":
        parts.append("--int8")
        if calib_cache:
            parts.append("--calib={}".format(calib_cache))
    if timing_cache:
        parts.append("--timingCacheFile={}".format(timing_cache))
    if dla_core is not None:
        parts.append("--useDLACore={}".format(int(dla_core)))
        if gpu_fallback:
            parts.append("--allowGPUFallback")
    return " ".join(parts)


