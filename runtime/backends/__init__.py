"""What every engine's options share: the core's backends (what each takes and runs, one record
each), the backend names --backend accepts and the thread bound.

Every engine runs in libswiftrt (runtime/backends/native.py); "native" (or "auto") lets the core
pick by file (.onnx: ONNX Runtime, .plan: TensorRT), the others name one of the core's backends.
What differs between those backends (the options they take, the files they run, what one timed
call covers, whether this libswiftrt has them compiled in) is declared here, once, so that
rt-bench's report, its environment block, --backend's help and ``rt-bench --list-backends`` look
it up instead of switching on backend names.
"""
import os
import threading

from runtime.errors import UserError

AUTO = ("native", "auto")   # the core picks the backend by the file


class Capability(object):
    """One of libswiftrt's backends: what it is, runs and takes.

    ``code``: its SRT_BACKEND_* number; ``files``: the artifact suffixes it runs; ``options``:
    the srt_open_options fields it uses (the core ignores the others, and refuses ``providers``
    for every backend but ONNX Runtime); ``includes``: what one inference call of it covers, for
    rt-bench's report; ``available``: compiled into the loaded libswiftrt (None: not asked yet);
    ``version``: its library's version, known once an engine of it has opened (None before).
    """

    def __init__(self, name, code, label, files, options, includes, available=None, version=None):
        self.name, self.code, self.label = name, code, label
        self.files, self.options, self.includes = tuple(files), tuple(options), includes
        self.available, self.version = available, version

    def with_state(self, available, version):
        return Capability(self.name, self.code, self.label, self.files, self.options, self.includes,
                          available, version)

    def as_dict(self):
        return {"name": self.name, "label": self.label, "available": self.available,
                "version": self.version, "files": list(self.files), "options": list(self.options),
                "includes": self.includes}


_DECLARED = (
    Capability("onnxruntime", 3, "ONNX Runtime", (".onnx",), ("threads", "providers", "spin", "device"),
               "ONNX Runtime Run through its C API (execution providers in priority order)"),
    Capability("openvino", 1, "OpenVINO", (".onnx",), ("threads",),
               "OpenVINO infer() on the CPU (latency hint, f32)"),
    Capability("tensorrt", 2, "TensorRT", (".plan", ".engine"), ("device",),
               "TensorRT enqueue on the GPU with the H2D / D2H copies, synchronized"),
)
AUTO_CODE = 0    # SRT_BACKEND_AUTO

BACKENDS = AUTO[:1] + tuple(c.name for c in _DECLARED)   # what --backend accepts (and "auto")

# --backend's help in every CLI: the names, and where to see what this libswiftrt has.
BACKEND_HELP = "{} (native: the core picks by file; rt-bench --list-backends: which are built in)".format(
    "|".join(BACKENDS))

_state = {"compiled": None, "versions": {}}
_lock = threading.Lock()


def _compiled():
    """The backends the loaded libswiftrt was built with (its version line names them), read once."""
    with _lock:
        if _state["compiled"] is None:
            from runtime import libswiftrt
            line = libswiftrt.version()
            _state["compiled"] = (tuple(line.split("backends:", 1)[1].strip(" )").split())
                                  if "backends:" in line else ())
        return _state["compiled"]


def capabilities():
    """Every core backend's Capability, in a fixed order, with what the loaded libswiftrt says.
    UserError (one line: how to build it) where the library is missing."""
    compiled = _compiled()
    return [c.with_state(c.name in compiled, _state["versions"].get(c.name)) for c in _DECLARED]


def capability(name):
    """The Capability of one core backend (``name``: "onnxruntime", or a core_backend line such as
    "onnxruntime 1.16.3 cpu"); UserError for a name the core does not have."""
    key = (name or "").split()[0] if name else ""
    for c in capabilities():
        if c.name == key:
            return c
    raise UserError("unknown backend {!r}; the core has {}".format(
        name, ", ".join(c.name for c in _DECLARED)))


def declared(name):
    """The declaration alone (no library asked): None for a name the core does not have."""
    for c in _DECLARED:
        if c.name == name:
            return c
    return None


def backend_code(name):
    """The SRT_BACKEND_* number of a --backend value (None, "native", "auto" or a core backend's
    name); UserError for any other name."""
    if name is None or name in AUTO:
        return AUTO_CODE
    c = declared(name)
    if c is None:
        raise UserError("unknown backend {!r}; the core has {}".format(
            name, ", ".join(d.name for d in _DECLARED)))
    return c.code


def check_backend(name, flag="--backend"):
    """Refuse a --backend value the core does not have (one line)."""
    if name is not None and name not in BACKENDS + AUTO:
        raise UserError("unknown {} {!r}; use one of {}".format(flag, name, ", ".join(BACKENDS)))


def note_opened(core_backend):
    """Record a backend's version from an opened engine's core_backend line ("openvino 2026.4.1")."""
    parts = (core_backend or "").split()
    if len(parts) > 1 and declared(parts[0]) is not None:
        with _lock:
            _state["versions"][parts[0]] = parts[1]


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
