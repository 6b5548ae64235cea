"""A real NVIDIA parser and builder where there is no GPU: TensorRT-RTX (optional).

NVIDIA's TensorRT-RTX wheels (``pip install swiftrt[trt-rtx]``: tensorrt-rtx-cu12-libs and
-bindings, Linux/Windows x86-64) create a Builder, parse ONNX with NVIDIA's 10.x ONNX importer
and run ``build_serialized_network`` without a GPU (CUDA reports error 35, "driver version is
insufficient", and the build goes on). It is not Jetson TensorRT: what its verdict proves
about TensorRT 10.3 on Jetson, and what not, is in docs/tensorrt.md ("TensorRT-RTX").

Used in addition to the static rules (runtime/plan/trt_rules.py), never instead: after the
rules pass for a 10.x target, ``require_accepted`` parses and builds the graph with RTX and
refuses it in one line when RTX rejects it. Where RTX is not installed it does nothing.

One known gap is reported, not failed: RTX ships no plugin library, so a DeformConv node
(imported through the ``ModulatedDeformConv2d`` plugin, which Jetson TensorRT has) stops at
the plugin lookup; the result says the graph was parsed up to that plugin.
"""
import os

from runtime.errors import UserError

MODULE = "tensorrt_rtx_bindings"
# The families whose importer RTX's is (RTX 1.x is built from TensorRT 10.x).
FAMILIES = ("10.0", "10.1", "10.3")
PLUGIN_ONLY_OPS = ("DeformConv",)
_NOT_RTX_ERRORS = ("cudaError 35", "CUDA driver version is insufficient", "CUDA initialization failure")


def import_rtx():
    """The TensorRT-RTX module, or None where it is not installed (or cannot load)."""
    try:
        return __import__(MODULE)
    except Exception:  # ImportError, or its shared libraries failing to load
        return None


def available():
    return import_rtx() is not None


class Result(object):
    """What RTX made of one ONNX model: ``parsed``, ``built`` (None: not tried), ``errors``
    (one line each, the node first), ``plugin_missing`` (parsed up to a plugin RTX lacks)."""

    def __init__(self, version, parsed, built, errors, plugin_missing=False):
        self.version, self.parsed, self.built = version, parsed, built
        self.errors, self.plugin_missing = errors, plugin_missing

    @property
    def accepted(self):
        return bool((self.parsed and self.built is not False) or self.plugin_missing)

    def summary(self):
        if self.plugin_missing:
            return "parsed up to the {} plugin, which TensorRT-RTX does not ship".format(self.plugin_missing)
        if not self.parsed:
            return "parser: " + (self.errors[0] if self.errors else "rejected")
        if self.built is False:
            return "builder: " + (self.errors[0] if self.errors else "failed")
        return "parsed and built" if self.built else "parsed"

    def to_dict(self):
        return {"version": self.version, "parsed": bool(self.parsed), "built": self.built,
                "plugin_missing": self.plugin_missing or None, "errors": list(self.errors[:3])}


def _first_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    useful = [line for line in lines if not any(n in line for n in _NOT_RTX_ERRORS)
              and not line.startswith("Invalid Node - ")]  # the node is named separately
    return (useful or lines or [""])[0]


def _logger(trt, messages):
    class Collecting(trt.ILogger):
        """Keeps errors for the one-line message; prints nothing."""

        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                if not any(n in msg for n in _NOT_RTX_ERRORS):
                    messages.append(_first_line(msg))

    return Collecting()


def check(path, build=True):
    """Parse (and with ``build``, build) the ONNX model at ``path`` with TensorRT-RTX.

    A Result; a UserError when RTX is not installed."""
    trt = import_rtx()
    if trt is None:
        raise UserError("TensorRT-RTX is not installed (pip install 'swiftrt[trt-rtx]')")
    messages = []
    logger = _logger(trt, messages)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = bool(parser.parse_from_file(os.path.abspath(path)))
    errors = []
    plugin_errors = 0
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        op = error.node_operator()
        where = "{} '{}'".format(op, error.node_name()) if op else "the model"
        errors.append("{}: {}".format(where, _first_line(error.desc())))
        if op in PLUGIN_ONLY_OPS and "plugin" in error.desc().lower() and "not found" in error.desc().lower():
            plugin_errors += 1
    version = str(getattr(trt, "__version__", "?"))
    if not parsed:
        missing = "ModulatedDeformConv2d" if errors and plugin_errors == len(errors) else False
        return Result(version, False, None, errors or messages, plugin_missing=missing)
    built = None
    if build:
        plan = builder.build_serialized_network(network, builder.create_builder_config())
        built = plan is not None  # the plan itself is not kept
    return Result(version, True, built, errors + messages)


def require_accepted(path, family, log=None):
    """For a 10.x ``family`` (runtime.plan.trt_rules.family of the target) with RTX installed:
    parse and build ``path`` with RTX; a one-line UserError when it rejects the graph. Returns
    the Result, or None (not 10.x, or RTX not installed)."""
    if family not in FAMILIES or not available():
        return None
    result = check(path)
    if not result.accepted:
        raise UserError("{} is rejected by TensorRT-RTX {} (NVIDIA's 10.x ONNX parser): {}".format(
            path, result.version, result.summary()))
    if log is not None:
        log("TensorRT-RTX {}: {}".format(result.version, result.summary()))
    return result
