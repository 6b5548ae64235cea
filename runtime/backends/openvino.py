"""OpenVINO backend: our .onnx engines on Intel CPUs through OpenVINO's own runtime.

Why a second CPU backend: on x86 CPUs with AMX or VNNI, OpenVINO (oneDNN) runs an INT8 QDQ
model in INT8 kernels that ONNX Runtime's MLAS does not match. It reads the plain symmetric
QDQ form (``rt-export --precision int8 --flavor trt``); the ``cpu`` flavor is rewritten for
ONNX Runtime and runs slower here (a warning says so).

The precision hint defaults to ``f32``: an engine keeps the precision its manifest states
(INT8 layers in INT8, the rest FP32). OpenVINO's own default on AMX CPUs is bf16, which
would silently change an FP32 engine's numbers.
"""
import os

from runtime.backends.base import Backend, TensorInfo
from runtime.errors import UserError, first_line

DEFAULT_PRECISION_HINT = "f32"


def import_core():
    """(openvino module or None, Core instance); 2023.1+ is ``openvino``, 2022.x ``openvino.runtime``."""
    try:
        try:
            import openvino as ov
            return ov, ov.Core()
        except (ImportError, AttributeError):
            from openvino.runtime import Core
            return None, Core()
    except ImportError:
        raise UserError("OpenVINO is not installed (pip install openvino)")


def version(module=None):
    """OpenVINO's version string, or None."""
    found = getattr(module, "__version__", None)
    if found:
        return found
    try:
        from openvino.runtime import get_version
        return get_version()
    except Exception:  # an install without the helper: the report just says None
        return None


def _dtype(port):
    try:
        return str(port.get_element_type().to_dtype())
    except Exception:  # a type numpy has no name for: report OpenVINO's
        return str(port.get_element_type())


def _shape(port):
    shape = port.get_partial_shape()
    return [d.get_length() if d.is_static else None for d in shape]


class OpenVinoBackend(Backend):
    """Compiles an ONNX model for an OpenVINO device (CPU by default) and runs it."""

    name = "openvino"

    def __init__(self, path, threads=None, precision_hint=DEFAULT_PRECISION_HINT, device="CPU",
                 manifest=None):
        if not os.path.exists(path):
            raise UserError("engine not found: {}".format(path))
        if not str(path).endswith(".onnx"):
            raise UserError("the openvino backend runs .onnx engines, not {}".format(path))
        module, core = import_core()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(str(path), device, config)
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise UserError("OpenVINO cannot compile {}: {}".format(path, first_line(exc)))
        self.request = self.compiled.create_infer_request()
        self.inputs = [TensorInfo(p.get_any_name(), _shape(p), _dtype(p)) for p in self.compiled.inputs]
        self.outputs = [TensorInfo(p.get_any_name(), _shape(p), _dtype(p)) for p in self.compiled.outputs]
        self.version = version(module)
        self.threads, self.precision_hint, self.device = threads, precision_hint, device
        self.warning = flavor_warning(manifest)

    def run(self, feeds):
        self.request.infer(feeds)
        # The request reuses its output buffers on the next call: hand out copies.
        return dict((info.name, self.request.get_output_tensor(i).data.copy())
                    for i, info in enumerate(self.outputs))

    def describe(self):
        return {"backend": self.name, "version": self.version, "device": self.device,
                "threads": self.threads, "precision_hint": self.precision_hint}

    def close(self):
        self.request = None
        self.compiled = None


def flavor_warning(manifest):
    """A one-line warning when the engine's INT8 graph was rewritten for ONNX Runtime, else None."""
    quant = manifest.quantization if manifest is not None else {}
    if quant.get("flavor") == "cpu":
        return ("this INT8 engine is the cpu flavor, rewritten for ONNX Runtime; OpenVINO runs "
                "the plain QDQ of rt-export --precision int8 --flavor trt faster")
    return None
