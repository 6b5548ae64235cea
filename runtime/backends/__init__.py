"""What every engine's options share: the backend names --backend accepts and the thread bound.

Every engine runs in libswiftrt (runtime/backends/native.py); "native" (or "auto") lets the core
pick by file (.onnx: ONNX Runtime, .plan: TensorRT), the others name one of the core's backends.
"""
import os

from runtime.errors import UserError

BACKENDS = ("native", "onnxruntime", "openvino", "tensorrt")  # what --backend accepts


THREADS_PER_CORE = 4  # threads above this many per core only thrash (and can exhaust memory)


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(value, flag="--threads"):
    """Refuse a thread count below 1 or above THREADS_PER_CORE x the usable cores: every
    engine an application opens (rt-segment's --threads, rt-ros2's -p threads:=N) is bounded
    here, in runtime.open_engine (100000 threads grew 50 MB/s and ignored SIGINT)."""
    if value is None:
        return
    most = THREADS_PER_CORE * usable_cores()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise UserError("{} must be between 1 and {} ({} x the {} usable cores), got {}".format(
            flag, most, THREADS_PER_CORE, usable_cores(), value))
