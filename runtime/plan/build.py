"""ONNX artifact -> TensorRT plan, checked against the ONNX model before it is accepted.

Runs where TensorRT and an NVIDIA GPU are (the Jetson itself): needs no torch and no onnx
(Python 3.6+). Before TensorRT sees the model, the graph is checked against the installed
version's parser rules (trt_rules) and the manifest's ``tensorrt_compat`` list.
After the build, libswiftrt runs the plan (its TensorRT backend) and the ONNX model (its ONNX
Runtime backend) on the same frames (runtime.plan.check: the road scenes shipped in
runtime/plan/check_frames, or the user's frames; the scene generator stays on the workstation);
NaN/Inf or too many differing class decisions fail the build (Polygraphy-style) and remove the
plan, so a bad engine never reaches ``engines/``. The check needs a libswiftrt built with
TensorRT: without it the build is refused before it starts.
"""
import os

from runtime import manifest as manifest_mod
from runtime.artifacts import check_artifact_output, publish, staging
from runtime.errors import UserError
from runtime.manifest import Manifest
from runtime.plan import check as check_mod
from runtime.plan.check_inputs import describe
from runtime.plan.trt_version import parse_version

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


def _core_opener(build):
    """The default ``open_plan``: libswiftrt's TensorRT backend, refused before the build where the
    core cannot run the check (built without TensorRT or without a CPU backend for the ONNX model).
    TensorRT's own absence is told first (``build`` None: TensorRT's builder builds)."""
    if build is None:
        from runtime.plan.builder import import_trt
        import_trt()
    check_mod.require_core_backends()
    return check_mod.open_plan


def _run_check(open_reference, source, open_plan, plan, manifest, compare):
    """``compare(plan engine, reference engine)`` with both opened (the reference first) and
    closed afterwards, whatever happens."""
    engines = []
    try:
        engines.append(open_reference(source))
        engines.append(open_plan(plan, manifest))
        return compare(engines[1], engines[0])
    finally:
        for engine in engines:
            engine.close()


def build_plan(onnx_path, plan_path, precision="fp16", workspace_mb=1024, timing_cache=None,
               int8_mode=None, calib_cache=None, amax_json=None, fp32_layers=(),
               check_count=DEFAULT_CHECK_IMAGES, max_mismatch=None, check_images=None, log=print,
               build=None, open_plan=None, open_reference=None, dla_core=None, gpu_fallback=False):
    """Build, check and describe a plan. ``build``/``open_plan``/``open_reference`` are for tests
    (``open_plan(path, manifest)`` and ``open_reference(onnx_path)`` give engines with
    libswiftrt's CoreEngine interface).

    The check runs ``check_count`` frames: the shipped road scenes, or the first frames of
    ``check_images`` (a folder of images or a video). ``dla_core``/``gpu_fallback``: build for
    a DLA core (runtime.plan.builder.use_dla); the plan's manifest records the placement."""
    onnx_manifest = Manifest.load(onnx_path)
    if onnx_manifest.artifact_format != "onnx":
        raise UserError("{} is not an ONNX artifact".format(onnx_path))
    if onnx_manifest.task == "forecast_stage":
        raise UserError("{} is a stage of a forecast bundle: build the bundle (its folder or "
                        "forecast.json)".format(onnx_path))
    # the user's output first (a collision is their mistake, whatever this machine lacks)
    check_artifact_output(plan_path, inputs=[onnx_path], kinds=(".plan", ".engine", ".trt"))
    open_plan = open_plan or _core_opener(build)
    open_reference = open_reference or check_mod.open_reference
    limit = DEFAULT_MAX_MISMATCH[precision] if max_mismatch is None else max_mismatch
    outlier = onnx_manifest.output("outlier_score") is not None

    def check(staged, manifest):
        log("checking the plan against {} on {} {}".format(onnx_path, check_count, describe(check_images)))
        manifest.write(staged)  # the core opens a plan by its sidecar (the staging folder's, for now)
        return _run_check(open_reference, onnx_path, open_plan, staged, manifest, lambda plan, reference:
                          check_mod.compare_model(plan, reference, check_count, limit, outlier=outlier,
                                                  batch=onnx_manifest.batch,
                                                  source=check_images))

    return _build_checked(onnx_path, onnx_manifest, plan_path, check, precision=precision,
                          workspace_mb=workspace_mb, timing_cache=timing_cache, int8_mode=int8_mode,
                          calib_cache=calib_cache, amax_json=amax_json, fp32_layers=fp32_layers,
                          check_images=check_images, log=log, build=build, dla_core=dla_core,
                          gpu_fallback=gpu_fallback)


def _build_checked(onnx_path, onnx_manifest, plan_path, check, precision, workspace_mb, timing_cache,
                   int8_mode=None, calib_cache=None, amax_json=None, fp32_layers=(), check_images=None,
                   log=print, build=None, dla_core=None, gpu_fallback=False):
    """One plan built into a staging folder; ``check(staged, manifest)`` (None: checked later, as
    part of its bundle) must pass before the plan and its manifest are published.

    An outlier model's head (its manifest's ``outlier.keep_fp32``) is added to ``fp32_layers``
    of FP16 and INT8 plans, as the FP16/INT8 ONNX exports keep it in FP32."""
    from runtime.plan import builder
    if precision == "int8":
        int8_mode = int8_mode or _default_int8_mode(onnx_manifest, calib_cache, amax_json)
    head = onnx_manifest.outlier.get("keep_fp32") or []
    if precision != "fp32" and head:
        fp32_layers = tuple(fp32_layers) + tuple(n for n in head if n not in fp32_layers)
        log("the outlier head stays in FP32 ({} layers)".format(len(head)))
    build = build or builder.build_engine
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
        if check is not None:
            verdict = check(staged, manifest)
            if not verdict["ok"]:
                raise UserError("the plan failed its check against the ONNX model ({}); nothing "
                                "written".format("; ".join(verdict["problems"][:3])))
            manifest = manifest.derive(post_build_check=verdict)
        manifest = publish(staged, manifest, plan_path)
    log("wrote {} and {}".format(plan_path, manifest_mod.sidecar_path(plan_path)))
    return manifest


def build_bundle_plans(bundle, output_dir, precision="fp16", workspace_mb=1024, timing_cache=None,
                       check_count=DEFAULT_CHECK_IMAGES, check_images=None, log=print, build=None,
                       open_plan=None, open_reference=None):
    """A forecast bundle on TensorRT: a plan per stage in ``output_dir`` and a ``forecast.json``
    naming them, checked as one bundle (libswiftrt runs a bundle, not a stage: a stream of
    ``check_count`` forecasts through the plans and through the ONNX bundle; the verdict is the
    new forecast.json's ``post_build_check``). Returns the new bundle's Manifest.

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
    open_plan = open_plan or _core_opener(build)
    open_reference = open_reference or check_mod.open_reference
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
            check_artifact_output(plan, inputs=[onnx_path], kinds=(".plan", ".engine", ".trt"))
            written = _build_checked(onnx_path, Manifest.load(onnx_path), plan, None, stage_precision,
                                     workspace_mb, timing_cache, check_images=check_images, log=log,
                                     build=build)
            digests[stage] = written.artifact["sha256"]
            built.append(plan)
            stages[stage] = os.path.basename(plan)
        manifest = source.derive(
            stages=stages, precision=precision, stage_sha256=digests,  # forecast.json pins the plans
            plans={"built_from": os.path.abspath(bundle_path), "f2f_precision": "fp32"})
        path = manifest.write_bundle(output_dir)
        built.append(path)  # removed with the plans if the check fails
        log("checking the plans against {} on {} forecasts from {}".format(
            bundle_path, check_count, describe(check_images)))
        verdict = _run_check(open_reference, bundle_path, open_plan, path, manifest, lambda plans, reference:
                             check_mod.compare_bundle(plans, reference, check_count,
                                                      DEFAULT_MAX_MISMATCH[precision], source.past_offsets,
                                                      source.frame_rate, source=check_images))
        if not verdict["ok"]:
            raise UserError("the plans failed their check against the ONNX bundle ({}); nothing "
                            "written".format("; ".join(verdict["problems"][:3])))
        manifest = manifest.derive(post_build_check=verdict)
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
