"""ONNX Runtime backend: TensorRT -> CUDA -> CPU execution providers, by availability.

With TensorRT's execution provider, FP16 / INT8 follow the manifest's precision and the
engines and timing caches ORT-TRT builds are kept in a cache folder per artifact
(``tensorrt_options``), so a restart loads them instead of rebuilding for minutes.
"""
import os

from runtime.backends.base import Backend, TensorInfo
from runtime.errors import UserError, first_line

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("ONNX Runtime is not installed: pip install onnxruntime "
                        "(or onnxruntime-gpu), or use --backend tensorrt")
    return onnxruntime


def choose_providers(requested=None):
    """Providers to use: the requested ones (checked), else the preferred available ones."""
    ort = _import_ort()
    available = ort.get_available_providers()
    if requested:
        names = [_provider_name(p) for p in requested]
        missing = [p for p in names if p not in available]
        if missing:
            raise UserError("ONNX Runtime provider(s) {} not available here; available: {}"
                            .format(", ".join(missing), ", ".join(available)))
        return names
    return [p for p in PREFERRED_PROVIDERS if p in available]


def default_cache_root():
    """Where ORT-TRT engines are cached: $SWIFTRT_CACHE, else ~/.cache/swiftrt/ort-tensorrt."""
    root = os.environ.get("SWIFTRT_CACHE")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "swiftrt", "ort-tensorrt")


def tensorrt_options(precision, sha256, ort_version, cache_root=None):
    """Options of ONNX Runtime's TensorRT execution provider for an artifact of this precision
    and sha256 (as its manifest records them; None: fp32, unknown).

    FP16 for fp16 and int8 artifacts, INT8 for int8 ones (explicit Q/DQ: no calibration table);
    engines cached in ``<cache_root>/<first 16 hex of the artifact's sha256>`` (ORT names its
    engines by the graph, so a folder per artifact keeps a re-export from loading a stale
    engine). Timing caches: ``trt_timing_cache_enable`` from ORT 1.11 (kept beside the
    engines), shared by all models through ``trt_timing_cache_path`` from ORT 1.17.
    """
    precision = precision or "fp32"
    sha = str(sha256 or "unknown")
    root = cache_root or default_cache_root()
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": os.path.join(root, sha[:16]),
               "trt_fp16_enable": precision in ("fp16", "int8"), "trt_int8_enable": precision == "int8"}
    version = tuple(int(p) for p in str(ort_version).split(".")[:2] if p.isdigit())
    if version >= (1, 11):
        options["trt_timing_cache_enable"] = True
    if version >= (1, 17):
        options["trt_timing_cache_path"] = root
    return options


def _provider_name(short):
    """Accept 'cpu', 'cuda', 'tensorrt' as well as full provider names."""
    aliases = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
               "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}
    return aliases.get(short.lower(), short)


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime.

    ``spin``: after a run, ONNX Runtime's intra-op threads spin for a while waiting for the next
    one (lower latency for one model called in a loop). Sessions run one after another, like a
    forecast bundle's stages, must not spin: each session's spinning pool takes the cores the
    next session needs (the three stages ran 2x slower on 2 cores).
    """

    name = "onnxruntime"

    def __init__(self, path, providers=None, threads=None, spin=True, manifest=None, cache_root=None):
        ort = _import_ort()
        if not os.path.exists(path):
            raise UserError("engine not found: {}".format(path))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.spin = bool(spin)
        self.providers = choose_providers(providers)
        configured = list(self.providers)
        if "TensorrtExecutionProvider" in configured:
            precision, sha = (manifest.precision, manifest.sha256) if manifest is not None else (None, None)
            trt_options = tensorrt_options(precision, sha, ort.__version__, cache_root)
            _makedirs(trt_options["trt_engine_cache_path"])
            configured[configured.index("TensorrtExecutionProvider")] = (
                "TensorrtExecutionProvider", trt_options)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=configured)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise UserError("cannot load ONNX model {}: {}".format(path, first_line(exc)))
        self.threads = threads
        self.inputs = [TensorInfo(i.name, i.shape, _ORT_TYPES.get(i.type, i.type))
                       for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, o.shape, _ORT_TYPES.get(o.type, o.type))
                        for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        self.version = ort.__version__

    def run(self, feeds):
        values = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values))

    def describe(self):
        return {"backend": self.name, "version": self.version,
                "providers": self.session.get_providers(), "threads": self.threads,
                "spinning": self.spin}


def _makedirs(folder):
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder)
    except OSError as exc:
        raise UserError("cannot create the TensorRT engine cache {}: {} (set SWIFTRT_CACHE)".format(
            folder, exc))
