"""Inference backends behind one interface; ``open_backend`` picks one by suffix and manifest."""
import logging
import os

from runtime.errors import UserError

# What --backend accepts (runtime.open_engine): the core's backends ("native" = the core's own
# choice by file), and "python-X": the Python engine on backend X, kept for the transition only.
PYTHON_PREFIX = "python-"
TENSOR_BACKENDS = ("onnxruntime", "tensorrt", "openvino")  # the Python engine's (open_backend)
BACKENDS = TENSOR_BACKENDS + ("native",) + tuple(PYTHON_PREFIX + b for b in TENSOR_BACKENDS)
log = logging.getLogger(__name__)


THREADS_PER_CORE = 4  # threads above this many per core only thrash (and can exhaust memory)


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(value, flag="--threads"):
    """Refuse a thread count below 1 or above THREADS_PER_CORE x the usable cores: every
    engine an application opens (rt-segment's --threads, rt-ros2's -p threads:=N) is bounded
    here, in open_backend (100000 threads grew 50 MB/s and ignored SIGINT)."""
    if value is None:
        return
    most = THREADS_PER_CORE * usable_cores()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise UserError("{} must be between 1 and {} ({} x the {} usable cores), got {}".format(
            flag, most, THREADS_PER_CORE, usable_cores(), value))


def backend_for(path, manifest=None, requested=None):
    """Which backend runs ``path``: ``requested`` if given, else by its Manifest's artifact
    format or its suffix (.onnx -> ONNX Runtime; OpenVINO only when asked for)."""
    if requested:
        if requested.startswith(PYTHON_PREFIX):
            requested = requested[len(PYTHON_PREFIX):]
        if requested not in TENSOR_BACKENDS + ("native",):
            raise UserError("unknown backend {!r}; use one of {}".format(requested, ", ".join(BACKENDS)))
        return requested
    fmt = manifest.artifact_format if manifest is not None else None
    if fmt == "onnx" or str(path).endswith(".onnx"):
        return "onnxruntime"
    if fmt == "tensorrt" or os.path.splitext(str(path))[1] in (".plan", ".engine", ".trt"):
        return "tensorrt"
    raise UserError("cannot tell the backend for {}: use .onnx or .plan, or --backend".format(path))


def open_backend(path, manifest=None, backend=None, providers=None, threads=None, spin=True):
    """Load ``path`` with the right backend; imports the backend's library lazily.

    ``spin=False``: ONNX Runtime's CPU threads sleep between runs instead of spinning (for
    models that run one after another, see OnnxRuntimeBackend)."""
    check_threads(threads, "threads")
    kind = backend_for(path, manifest, backend)
    if kind == "native":  # libswiftrt runs whole engines (frame in), not one model's tensors
        raise UserError("the native backend runs whole engines: open {} with runtime.open_engine("
                        "path, backend='native')".format(path))
    if kind == "onnxruntime":
        from runtime.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(str(path), providers=providers, threads=threads, spin=spin,
                                  manifest=manifest)
    if kind == "openvino":
        if providers:
            raise UserError("--providers selects ONNX Runtime execution providers; the openvino "
                            "backend does not use them")
        from runtime.backends.openvino import OpenVinoBackend
        backend = OpenVinoBackend(str(path), threads=threads, manifest=manifest)
        if backend.warning:
            log.warning("warning: %s: %s", os.path.basename(str(path)), backend.warning)
        return backend
    raise UserError("TensorRT plans run only in libswiftrt: open {} with runtime.open_engine(path, "
                    "backend='tensorrt') (rt-segment/rt-bench --backend tensorrt)".format(path))
