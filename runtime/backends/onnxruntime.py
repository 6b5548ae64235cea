"""ONNX Runtime backend: TensorRT -> CUDA -> CPU execution providers, by availability."""
import os

from runtime.backends.base import Backend, TensorInfo
from runtime.errors import UserError

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

    def __init__(self, path, providers=None, threads=None, spin=True):
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
        try:
            self.session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError("cannot load ONNX model {}: {}".format(path, first[:300]))
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
