"""Build TensorRT plans from ONNX with the TensorRT installed here (on the Jetson itself).

The graph is checked against the installed version's parser rules (trt_rules) before
TensorRT sees it, so an illegal graph fails with one line naming the node and the rule.

TensorRT is imported lazily (it exists only where JetPack or NVIDIA's wheels put it), and
every version difference is a small explicit branch on the installed version, following
the API table of the deployment reference (8.2 on TX2, 8.5.2 on Xavier, 8.6.2 / 10.3 on
Orin). ``trt`` and ``gpu_info`` can be injected, so the tests run it with fakes.

Also here, pure Python: the plan manifest.
"""
import ctypes
import os
import sys
import time

from runtime import manifest as manifest_mod
from runtime.plan import trt_version
from runtime.errors import UserError, first_line
from runtime.jsonfile import write_bytes_atomic
from runtime.plan import calibration_cache, trt_rules

PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("qdq", "cache", "ranges")


# -- TensorRT access --------------------------------------------------------------------

def import_trt():
    try:
        import tensorrt
    except (ImportError, OSError):
        raise UserError("TensorRT is not installed here: build plans on the Jetson (JetPack's "
                        "python3-libnvinfer) or on a GPU box with tensorrt-cu12>=10,<11")
    return tensorrt


CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 75, 76


def cuda_gpu_info(device=0, lib=None):
    """{'name', 'compute_capability'} of a CUDA device, asked of the CUDA driver (libcuda, through
    ctypes: no pycuda); None values, with a warning, where there is no driver or GPU."""
    try:
        lib = lib if lib is not None else ctypes.CDLL("libcuda.so.1")
        dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        for what, status in (("cuInit", lambda: lib.cuInit(0)),
                             ("cuDeviceGet", lambda: lib.cuDeviceGet(ctypes.byref(dev), device)),
                             ("cuDeviceGetName", lambda: lib.cuDeviceGetName(name, len(name), dev)),
                             ("cuDeviceGetAttribute", lambda: lib.cuDeviceGetAttribute(
                                 ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)),
                             ("cuDeviceGetAttribute", lambda: lib.cuDeviceGetAttribute(
                                 ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))):
            code = status()
            if code != 0:
                raise RuntimeError("{} returned CUDA error {}".format(what, code))
        return {"name": name.value.decode("utf-8", "replace"),
                "compute_capability": trt_version.compute_capability((major.value, minor.value))}
    except (OSError, RuntimeError) as exc:  # no driver library, or no usable GPU
        _warn("cannot tell the GPU ({}): the plan manifest will not record it, so the runtime "
              "can only check the TensorRT version".format(first_line(exc)))
        return {"name": None, "compute_capability": None}


def _make_logger(trt, verbose=False):
    """A TensorRT logger that prints warnings and keeps the errors for our one-line messages."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg).strip())
            worst = trt.ILogger.Severity.INFO if verbose else trt.ILogger.Severity.WARNING
            if int(severity) <= int(worst):
                sys.stderr.write("[TensorRT] {}\n".format(msg))

    return _Logger()


def _make_cache_calibrator(trt, cache_bytes):
    """An IInt8EntropyCalibrator2 that only replays a calibration cache (no batches)."""

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self, data):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.data = data

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None

        def read_calibration_cache(self):
            return self.data

        def write_calibration_cache(self, cache):
            return None

    return _CacheCalibrator(cache_bytes)


# -- building ---------------------------------------------------------------------------

def build_engine(onnx_path, plan_path, precision="fp16", workspace_mb=1024, timing_cache=None,
                 int8_mode="qdq", calib_cache=None, amax_json=None, fp32_layers=(), trt=None,
                 gpu_info=None, verbose=False, dla_core=None, gpu_fallback=False):
    """Build ``plan_path`` from ``onnx_path``; returns a dict describing the build.

    precision: 'fp32', 'fp16' (FP32 fallback where FP16 is not fast) or 'int8' (INT8 with
    FP16 fallback; needs a GPU with fast INT8). int8_mode: 'qdq' (the ONNX model has Q/DQ nodes),
    'cache' (a TensorRT calibration cache, ``calib_cache``) or 'ranges' (an amax JSON
    ``{tensor name: amax}``, ``amax_json``). fp32_layers: substrings of layer names kept in
    FP32. timing_cache: a file loaded if present and saved after the build. dla_core: build for
    that DLA core (Xavier, Orin), with ``gpu_fallback`` the layers DLA cannot run on the GPU.
    """
    if precision not in PRECISIONS:
        raise UserError("precision {!r}: use one of {}".format(precision, ", ".join(PRECISIONS)))
    if precision == "int8" and int8_mode not in INT8_MODES:
        raise UserError("int8 mode {!r}: use one of {}".format(int8_mode, ", ".join(INT8_MODES)))
    if not os.path.exists(str(onnx_path)):
        raise UserError("ONNX model not found: {}".format(onnx_path))
    if precision == "int8" and int8_mode == "cache" and not calib_cache:
        raise UserError("int8 mode 'cache' needs a calibration cache file")
    if precision == "int8" and int8_mode == "ranges" and not amax_json:
        raise UserError("int8 mode 'ranges' needs an amax JSON file ({tensor name: amax})")
    trt = trt if trt is not None else import_trt()
    version = trt_version.parse_version(trt.__version__)
    vstr = trt_version.version_string(version)
    # Our own check first: an illegal graph fails naming the node and the rule, not TensorRT's
    # raw parser error (and the plan is never started).
    trt_rules.require_legal(str(onnx_path), vstr)
    logger = _make_logger(trt, verbose)
    trt.init_libnvinfer_plugins(logger, "")
    builder = _create_builder(trt, logger)

    flags = 0 if version[0] >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    _parse(parser, str(onnx_path), vstr)

    config = builder.create_builder_config()
    workspace = int(workspace_mb) * (1 << 20)
    if version[:2] >= (8, 4):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace

    used = []
    info_extra = {}
    if precision in ("fp16", "int8"):
        if builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            used.append("FP16")
        else:
            _warn("this GPU has no fast FP16: building without FP16 kernels")
    calibrator = None  # keep a reference until the build is done
    if precision == "int8":
        # Gated by the GPU, not the version: Xavier on JetPack 4.6 (TensorRT 8.2) has fast INT8
        # (built there from the calibration cache or the amax table); a TX2 has none.
        if not builder.platform_has_fast_int8:
            raise UserError("INT8 needs a GPU with fast INT8 (Xavier, Orin); this one has none "
                            "(a TX2 has no fast INT8): build fp16")
        config.set_flag(trt.BuilderFlag.INT8)
        used.append("INT8")
        if int8_mode == "qdq":
            if not _has_qdq(trt, network):
                raise UserError("int8 mode 'qdq' but {} has no QuantizeLinear/DequantizeLinear "
                                "nodes: use a QDQ model, or int8 mode 'cache' or 'ranges'"
                                .format(onnx_path))
        elif int8_mode == "cache":
            data = calibration_cache.read_calibration_cache(calib_cache, expected_sha256=manifest_mod.sha256_file(
                onnx_path), expected_version=vstr)
            calibrator = _make_cache_calibrator(trt, data)
            config.int8_calibrator = calibrator
        else:
            amax = calibration_cache.read_amax_json(amax_json, onnx_path=onnx_path)
            info_extra["ranges"] = set_dynamic_ranges(network, amax)

    if dla_core is not None:
        info_extra["dla"] = use_dla(trt, builder, network, config, dla_core, gpu_fallback, precision)
        if gpu_fallback:
            used.append("GPU_FALLBACK")

    if fp32_layers:
        if hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS"):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            used.append("OBEY_PRECISION_CONSTRAINTS")
        else:
            config.set_flag(trt.BuilderFlag.STRICT_TYPES)
            used.append("STRICT_TYPES")
        info_extra["fp32_layers"] = keep_layers_fp32(trt, network, fp32_layers)

    if timing_cache:
        blob = b""
        if os.path.exists(str(timing_cache)):
            with open(str(timing_cache), "rb") as handle:
                blob = handle.read()
        cache = config.create_timing_cache(blob)
        if cache is None or config.set_timing_cache(cache, ignore_mismatch=False) is False:
            _warn("timing cache {} was made by another TensorRT or GPU (or is damaged): starting "
                  "a new one".format(timing_cache))
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    gpu = (gpu_info or cuda_gpu_info)()
    t0 = time.time()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.time() - t0
    if serialized is None:
        reason = logger.errors[-1] if logger.errors else "see the TensorRT log above"
        raise UserError("TensorRT {} could not build {}: {}".format(vstr, onnx_path,
                                                                    _one_line(reason)))
    write_bytes_atomic(str(plan_path), serialized)
    if timing_cache:
        write_bytes_atomic(str(timing_cache), config.get_timing_cache().serialize())

    info = {"tensorrt_version": vstr, "gpu": gpu.get("name"),
            "compute_capability": trt_version.compute_capability(gpu.get("compute_capability")),
            "precision": precision, "flags": used, "workspace_mb": int(workspace_mb),
            "int8_mode": int8_mode if precision == "int8" else None,
            "timing_cache": str(timing_cache) if timing_cache else None,
            "build_seconds": round(seconds, 2), "plan": str(plan_path)}
    info.update(info_extra)
    return info


def use_dla(trt, builder, network, config, core, gpu_fallback, precision):
    """Build for DLA core ``core``: IBuilderConfig::setDefaultDeviceType(kDLA), setDLACore and,
    with ``gpu_fallback``, BuilderFlag::kGPU_FALLBACK (the layers DLA cannot run go to the GPU;
    without it one such layer fails the build, so it is refused here first). Returns the
    placement the builder reports (canRunOnDLA per layer). Not run on hardware."""
    if precision == "fp32":
        raise UserError("DLA runs FP16 or INT8 only: build --precision fp16 or int8 with --dla-core")
    cores = int(getattr(builder, "num_DLA_cores", 0) or 0)
    if cores == 0:
        raise UserError("this device has no DLA (Xavier and Orin AGX/NX have DLA cores; TX2, Nano and "
                        "Orin Nano have none): build without --dla-core")
    if not 0 <= int(core) < cores:
        raise UserError("--dla-core {}: this device has DLA cores 0..{}".format(core, cores - 1))
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    if gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_gpu = [layer.name for layer in layers if not config.can_run_on_DLA(layer)]
    if on_gpu and not gpu_fallback:
        raise UserError("{} of {} layers cannot run on DLA (first: {}): add --gpu-fallback, or export "
                        "the DLA form (rt-export --dla)".format(len(on_gpu), len(layers), on_gpu[0]))
    return {"core": int(core), "gpu_fallback": bool(gpu_fallback), "layers_on_dla": len(layers) - len(on_gpu),
            "layers_on_gpu": len(on_gpu), "gpu_layers": on_gpu}


def _create_builder(trt, logger):
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # pybind11: "factory function returned nullptr"
        builder = None
        failure = first_line(exc)
    else:
        failure = "TensorRT returned no builder"
    if builder is None:
        seen = " ".join(logger.errors + [failure])
        if "CUDA initialization failure" in seen or "error: 35" in seen:
            raise UserError("TensorRT is installed but CUDA cannot start here (CUDA initialization "
                            "failure, error 35: no GPU or no NVIDIA driver): build the plan on "
                            "the Jetson")
        raise UserError("cannot create a TensorRT builder: {}".format(_one_line(
            logger.errors[-1] if logger.errors else failure)))
    return builder


def _parse(parser, onnx_path, vstr):
    if hasattr(parser, "parse_from_file"):  # resolves external weight files beside the model
        ok = parser.parse_from_file(onnx_path)
    else:
        with open(onnx_path, "rb") as handle:
            ok = parser.parse(handle.read())
    if not ok:
        errors = [_one_line(str(parser.get_error(i))) for i in range(parser.num_errors)]
        raise UserError("TensorRT {} cannot parse {}: {}".format(
            vstr, onnx_path, "; ".join(errors) or "unknown parser error"))


def _has_qdq(trt, network):
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in kinds for i in range(network.num_layers))


def network_tensors(network):
    """Every tensor of a parsed network: its inputs and the outputs of all layers."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tensors.extend(layer.get_output(j) for j in range(layer.num_outputs))
    return tensors


def set_dynamic_ranges(network, amax):
    """``tensor.dynamic_range = (-a, a)`` for every network tensor named in ``amax``.

    Returns {'set': n, 'missing': [names of network tensors without an entry]}; refuses a
    table that names none of the network's tensors (it was made for another model).
    """
    count, missing = 0, []
    for tensor in network_tensors(network):
        if tensor.name in amax:
            value = abs(float(amax[tensor.name]))
            tensor.dynamic_range = (-value, value)
            count += 1
        else:
            missing.append(tensor.name)
    if count == 0:
        raise UserError("the amax table names none of the network's tensors: was it made for "
                        "this model?")
    if missing:
        _warn("{} tensor(s) have no INT8 range and stay in FP16/FP32 (e.g. {})".format(
            len(missing), missing[0]))
    return {"set": count, "missing": missing}


def keep_layers_fp32(trt, network, patterns):
    """Pin every layer whose name contains one of ``patterns`` to FP32; returns the names.

    Only floating-point outputs are retyped (shape and index tensors keep their types).
    """
    chosen, hit = [], set()
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        matched = [p for p in patterns if p in layer.name]
        if not matched:
            continue
        hit.update(matched)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in floats:
                layer.set_output_type(j, trt.float32)
        chosen.append(layer.name)
    unused = [p for p in patterns if p not in hit]
    if unused:
        raise UserError("no layer name contains {}: check --fp32-layers against the network's "
                        "layer names".format(", ".join(repr(p) for p in unused)))
    return chosen


# -- plan manifest ----------------------------------------------------------------------

def plan_manifest(onnx_manifest, plan_path, build_info):
    """The Manifest of a plan: the ONNX model's Manifest with its artifact, precision and
    ``tensorrt``.

    The runtime's compatibility check reads exactly ``tensorrt``: version, gpu,
    compute_capability (and reports flags, workspace_mb, int8_mode).
    """
    tensorrt = {"version": build_info["tensorrt_version"], "gpu": build_info.get("gpu"),
                "compute_capability": build_info.get("compute_capability"),
                "flags": list(build_info.get("flags", [])),
                "workspace_mb": build_info.get("workspace_mb"),
                "int8_mode": build_info.get("int8_mode")}
    if build_info.get("dla"):  # a DLA build: core, GPU fallback, where the builder put the layers
        tensorrt["dla"] = build_info["dla"]
    return onnx_manifest.derive(
        artifact={"file": os.path.basename(str(plan_path)), "format": "tensorrt",
                  "sha256": manifest_mod.sha256_file(plan_path)},
        precision=build_info["precision"], tensorrt=tensorrt)


# -- helpers ----------------------------------------------------------------------------

def _warn(text):
    sys.stderr.write("warning: {}\n".format(text))



def _one_line(text):
    return " ".join(str(text).split())
