"""libswiftrt, the C core, as ctypes sees it: where the library is, its structs and prototypes,
its status codes as Python errors, and a numpy frame as an srt_frame.

One module loads the library so that everything over it (runtime.backends.native's engines,
runtime.core_preprocess's srt_preprocess) shares one handle and one set of declarations.

Where: ``$SWIFTRT_LIBRARY``, else the package's own copy (runtime/native_lib, built by ``pip
install .``), else ``build/native/libswiftrt.so`` of this checkout (``make native-lib``), else
``libswiftrt`` on the loader's path.
"""
import ctypes
import ctypes.util
import os
import threading

import numpy as np

from runtime.errors import ManifestError, UserError

ABI_VERSION = 1
MAX_PAST = 16
SRT_OK = 0
# Statuses a user causes (a bad file or manifest, a frame the engine cannot take): UserError.
_USER_STATUSES = (1, 3, 4, 5, 6)
_FORMAT_BGR8 = 1

_RUNTIME = os.path.dirname(os.path.abspath(__file__))
PACKAGE_LIBRARY = os.path.join(_RUNTIME, "native_lib", "libswiftrt.so.{}".format(ABI_VERSION))  # setup.py
BUILD_LIBRARY = os.path.join(os.path.dirname(_RUNTIME), "build", "native", "libswiftrt.so")


class OpenOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("backend", ctypes.c_int32),
                ("threads", ctypes.c_int32), ("resize", ctypes.c_int32),
                ("use_outlier_threshold", ctypes.c_int32), ("outlier_threshold", ctypes.c_float),
                ("decode_current", ctypes.c_int32), ("device", ctypes.c_int32),
                ("spin", ctypes.c_int32), ("providers", ctypes.c_char_p),
                ("allow_legacy", ctypes.c_int32), ("reserved0", ctypes.c_int32)]


class Frame(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("format", ctypes.c_int32),
                ("width", ctypes.c_int32), ("height", ctypes.c_int32),
                ("reserved0", ctypes.c_int32), ("stride", ctypes.c_size_t),
                ("data", ctypes.c_void_p), ("timestamp", ctypes.c_double),
                ("has_timestamp", ctypes.c_int32), ("reserved1", ctypes.c_int32),
                # native-safety: bytes readable at data; where data lives; the caller's CUDA stream
                ("data_size", ctypes.c_size_t), ("memory", ctypes.c_int32),
                ("reserved2", ctypes.c_int32), ("cuda_stream", ctypes.c_void_p)]


class Result(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("reserved0", ctypes.c_int32),
                ("class_map", ctypes.c_void_p), ("class_map_size", ctypes.c_size_t),
                ("outlier_score", ctypes.c_void_p), ("outlier_score_size", ctypes.c_size_t),
                ("outlier_mask", ctypes.c_void_p), ("outlier_mask_size", ctypes.c_size_t),
                ("forecast_map", ctypes.c_void_p), ("forecast_map_size", ctypes.c_size_t),
                ("outlier_pixels", ctypes.c_int64), ("is_forecast", ctypes.c_int32),
                ("reserved1", ctypes.c_int32), ("forecast_time", ctypes.c_double),
                ("picked_count", ctypes.c_int32), ("reserved2", ctypes.c_int32),
                ("picked_times", ctypes.c_double * MAX_PAST),
                ("preprocess_ms", ctypes.c_double), ("inference_ms", ctypes.c_double),
                ("postprocess_ms", ctypes.c_double), ("features_ms", ctypes.c_double),
                ("f2f_ms", ctypes.c_double), ("decoder_ms", ctypes.c_double),
                ("total_ms", ctypes.c_double)]


class EngineInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("task", ctypes.c_int32),
                ("backend", ctypes.c_int32), ("num_classes", ctypes.c_int32),
                ("input_height", ctypes.c_int32), ("input_width", ctypes.c_int32),
                ("output_height", ctypes.c_int32), ("output_width", ctypes.c_int32),
                ("has_outlier_score", ctypes.c_int32), ("outlier_threshold", ctypes.c_float),
                ("forecast_horizon", ctypes.c_int32), ("past_frames", ctypes.c_int32),
                ("frame_rate", ctypes.c_double), ("forecast_horizon_s", ctypes.c_double),
                ("precision", ctypes.c_char * 16), ("arch", ctypes.c_char * 64),
                ("backend_name", ctypes.c_char * 32)]


class ClassInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("id", ctypes.c_int32),
                ("color", ctypes.c_uint8 * 3), ("reserved0", ctypes.c_uint8),
                ("name", ctypes.c_char * 64)]


_lib = None
_lib_lock = threading.Lock()


def library_path():
    """Where the library is looked for first: the environment, then the installed package's
    copy, then this checkout's build (which an editable install uses)."""
    if os.environ.get("SWIFTRT_LIBRARY"):
        return os.environ["SWIFTRT_LIBRARY"]
    return PACKAGE_LIBRARY if os.path.exists(PACKAGE_LIBRARY) else BUILD_LIBRARY


def load_library():
    """The loaded libswiftrt with its prototypes declared (once per process)."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not os.path.exists(path):
            path = ctypes.util.find_library("swiftrt")
        if not path:
            raise UserError("libswiftrt is not built: `pip install .` builds it into the package, "
                            "`make native-lib` into build/native (or set SWIFTRT_LIBRARY to its path)")
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise UserError("cannot load libswiftrt ({}): {}".format(path, exc))
        if not hasattr(lib, "srt_open_options_init_sized"):
            raise UserError("{} is a libswiftrt before 1.0 (no srt_open_options_init_sized): "
                            "rebuild it (make native)".format(path))
        lib.srt_abi_version.restype = ctypes.c_uint32
        lib.srt_version.restype = ctypes.c_char_p
        lib.srt_last_error.restype = ctypes.c_char_p
        lib.srt_status_string.restype = ctypes.c_char_p
        lib.srt_status_string.argtypes = [ctypes.c_int32]
        # The sized init: fills exactly this mirror's struct (srt_open_options_init is the 0.1.0
        # export, which fills 0.1.0's struct only).
        lib.srt_open_options_init_sized.argtypes = [ctypes.POINTER(OpenOptions), ctypes.c_uint32]
        lib.srt_engine_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(OpenOptions),
                                        ctypes.POINTER(ctypes.c_void_p)]
        lib.srt_engine_close.argtypes = [ctypes.c_void_p]
        lib.srt_engine_close.restype = None
        lib.srt_engine_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(EngineInfo)]
        lib.srt_engine_class.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ClassInfo)]
        lib.srt_engine_run.argtypes = [ctypes.c_void_p, ctypes.POINTER(Frame), ctypes.POINTER(Result)]
        lib.srt_engine_reset.argtypes = [ctypes.c_void_p]
        if hasattr(lib, "srt_engine_run_batch"):   # ABI 1.1 (SWIFTRT_1.1)
            lib.srt_engine_run_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(Frame)),
                                                 ctypes.c_size_t, ctypes.POINTER(ctypes.POINTER(Result))]
            lib.srt_engine_run_batch.restype = ctypes.c_int32
        for name in ("srt_open_options_init_sized", "srt_engine_open", "srt_engine_info",
                     "srt_engine_class", "srt_engine_run", "srt_engine_reset"):
            getattr(lib, name).restype = ctypes.c_int32
        if lib.srt_abi_version() != ABI_VERSION:
            raise UserError("{} has ABI version {}, this runtime speaks version {}: rebuild it "
                            "(make native)".format(path, lib.srt_abi_version(), ABI_VERSION))
        lib.path = path
        _lib = lib
        return lib


def version():
    """libswiftrt's version line (names the backends compiled in)."""
    return load_library().srt_version().decode()


def check(lib, status, what=None):
    """A failed srt_* call -> ManifestError / UserError (one line a user can act on) or
    RuntimeError. ``what``: a prefix; None for srt_engine_open, whose messages name the file."""
    if status == SRT_OK:
        return
    message = lib.srt_last_error().decode("utf-8", "replace")
    if what:
        message = "{}: {}".format(what, message)
    if status == 4:
        raise ManifestError(message)
    if status in _USER_STATUSES:
        raise UserError(message)
    raise RuntimeError("{} ({})".format(message, lib.srt_status_string(status).decode()))


def frame_struct(frame, timestamp=None):
    """(srt_frame over a BGR uint8 (H, W, 3) ``frame``, the array it points into: keep it alive
    for the call)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("expected an HxWx3 uint8 BGR frame, got {} {}".format(
            frame.dtype, frame.shape))
    if frame.strides[2] != 1 or frame.strides[1] != 3 or frame.strides[0] < 0:
        frame = np.ascontiguousarray(frame)
    f = Frame()
    f.struct_size = ctypes.sizeof(Frame)
    f.format = _FORMAT_BGR8
    f.height, f.width = frame.shape[0], frame.shape[1]
    f.stride = frame.strides[0]
    f.data = frame.ctypes.data
    f.data_size = frame.strides[0] * (frame.shape[0] - 1) + frame.shape[1] * 3
    if timestamp is not None:
        f.timestamp, f.has_timestamp = float(timestamp), 1
    return f, frame
