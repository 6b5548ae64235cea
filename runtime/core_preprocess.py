"""Camera frame -> the network's input tensor, computed by libswiftrt (srt_preprocess).

Why through the core: preprocessing exists once, in the C core that every engine runs
(runtime/native/src/preprocess.cpp). Calibration, parity checks, the on-device plan check and the
display of the fitted frame all get the very pixels an engine feeds its network, bit for bit,
because they call the same code. This module only describes the input to the core and wraps the
results in numpy arrays; it holds no pixel or geometry arithmetic.

``Preprocessor(spec)``: the manifest's input (a runtime.manifest.Input) -> ``fit(frame)``,
``to_tensor(fitted)``, ``__call__(frame)``. ``fit_frame(frame, size, mode)``: a frame fitted to a
size. ``fit_geometry(src_hw, size, mode)``: how a frame of one size is fitted to another (what
maps and camera intrinsics are moved by), without a frame.
Where libswiftrt is not built, both raise UserError with the command that builds it.
"""
import ctypes

import numpy as np

from runtime import libswiftrt
from runtime.errors import UserError
from runtime.manifest import RESIZE_MODES  # the contract names them (and the schema)

# swiftrt.h's enums (ABI 1.2)
_RESIZE = {"stretch": 1, "letterbox": 2, "crop": 3}
_RESIZE_NAME = dict((number, name) for name, number in _RESIZE.items())
_LAYOUT = {"NHWC": 1, "NCHW": 2}
_DTYPE = {"uint8": 1, "float32": 2}
_COLOR = {"BGR": 1, "RGB": 2}


class InputSpecStruct(ctypes.Structure):
    """srt_input_spec"""
    _fields_ = [("struct_size", ctypes.c_uint32), ("height", ctypes.c_int32),
                ("width", ctypes.c_int32), ("layout", ctypes.c_int32), ("dtype", ctypes.c_int32),
                ("color_order", ctypes.c_int32), ("resize", ctypes.c_int32),
                ("normalize", ctypes.c_int32), ("scale", ctypes.c_float),
                ("mean", ctypes.c_float * 3), ("std", ctypes.c_float * 3),
                ("reserved0", ctypes.c_int32)]


class FitStruct(ctypes.Structure):
    """srt_fit"""
    _fields_ = [("struct_size", ctypes.c_uint32), ("resize", ctypes.c_int32),
                ("src_height", ctypes.c_int32), ("src_width", ctypes.c_int32),
                ("resized_height", ctypes.c_int32), ("resized_width", ctypes.c_int32),
                ("height", ctypes.c_int32), ("width", ctypes.c_int32),
                ("pad_x", ctypes.c_int32), ("pad_y", ctypes.c_int32),
                ("crop_x", ctypes.c_int32), ("crop_y", ctypes.c_int32),
                ("scale_x", ctypes.c_double), ("scale_y", ctypes.c_double)]


class Fit(object):
    """How a frame was fitted to the network input (to map results back), as the core reports it.

    The source (``src_h`` x ``src_w``) was resized to ``resized_h`` x ``resized_w`` (scale
    ``scale_x``, ``scale_y``), then padded by ``pad_x``, ``pad_y`` (letterbox) or cut at
    ``crop_x``, ``crop_y`` (crop) to the input's ``height`` x ``width``.
    """

    __slots__ = ("mode", "scale_x", "scale_y", "pad_x", "pad_y", "crop_x", "crop_y",
                 "src_h", "src_w", "resized_h", "resized_w", "height", "width")

    def __init__(self, mode, scale_x=1.0, scale_y=1.0, pad_x=0, pad_y=0, crop_x=0, crop_y=0,
                 src_hw=(0, 0), resized_hw=(0, 0), size=(0, 0)):
        self.mode = mode
        self.scale_x, self.scale_y = scale_x, scale_y
        self.pad_x, self.pad_y = pad_x, pad_y
        self.crop_x, self.crop_y = crop_x, crop_y
        self.src_h, self.src_w = src_hw
        self.resized_h, self.resized_w = resized_hw
        self.height, self.width = size

    @classmethod
    def from_core(cls, f):
        """The Fit of an srt_fit the core filled."""
        return cls(_RESIZE_NAME[f.resize], f.scale_x, f.scale_y, f.pad_x, f.pad_y, f.crop_x,
                   f.crop_y, (f.src_height, f.src_width), (f.resized_height, f.resized_width),
                   (f.height, f.width))


def _library():
    """libswiftrt with srt_preprocess's prototypes declared (a library before ABI 1.2 has none)."""
    lib = libswiftrt.load_library()
    if not hasattr(lib, "srt_preprocess"):
        raise UserError("{} is a libswiftrt before 1.2 (no srt_preprocess): rebuild it "
                        "(make native-lib)".format(lib.path))
    if lib.srt_preprocess.argtypes is None:
        lib.srt_input_spec_init_sized.argtypes = [ctypes.POINTER(InputSpecStruct), ctypes.c_uint32]
        lib.srt_fit_init_sized.argtypes = [ctypes.POINTER(FitStruct), ctypes.c_uint32]
        lib.srt_fit_geometry.argtypes = [ctypes.c_int32] * 5 + [ctypes.POINTER(FitStruct)]
        lib.srt_preprocess.argtypes = [ctypes.POINTER(InputSpecStruct), ctypes.POINTER(libswiftrt.Frame),
                                       ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                       ctypes.c_size_t, ctypes.POINTER(FitStruct)]
        for name in ("srt_input_spec_init_sized", "srt_fit_init_sized", "srt_fit_geometry",
                     "srt_preprocess"):
            getattr(lib, name).restype = ctypes.c_int32
    return lib


def _check(lib, status, what):
    """A failed srt_* call -> UserError (one line) or RuntimeError, as for the engine's calls."""
    libswiftrt.check(lib, status, what)


def _resize_number(mode):
    if mode not in _RESIZE:
        raise UserError("unknown resize mode {!r}; use one of {}".format(mode, ", ".join(RESIZE_MODES)))
    return _RESIZE[mode]


def _new_fit(lib):
    fit = FitStruct()
    _check(lib, lib.srt_fit_init_sized(ctypes.byref(fit), ctypes.sizeof(fit)), "srt_fit_init_sized")
    return fit


def fit_geometry(src_hw, size, mode="stretch"):
    """The Fit of a ``src_hw`` = (height, width) frame to ``size`` by ``mode``, as the core fits
    frames (srt_fit_geometry): what maps and camera intrinsics are moved by."""
    number = _resize_number(mode)
    lib = _library()
    fit = _new_fit(lib)
    (src_h, src_w), (height, width) = src_hw, size
    _check(lib, lib.srt_fit_geometry(int(src_h), int(src_w), int(height), int(width), number,
                                     ctypes.byref(fit)), "srt_fit_geometry")
    return Fit.from_core(fit)


def _input_spec(lib, size, layout, dtype, color_order, resize, normalization=None):
    """The srt_input_spec of an input: ``normalization`` {in_graph, scale, mean, std} or None."""
    s = InputSpecStruct()
    _check(lib, lib.srt_input_spec_init_sized(ctypes.byref(s), ctypes.sizeof(s)),
           "srt_input_spec_init_sized")
    s.height, s.width = size
    s.layout, s.dtype = _LAYOUT[layout], _DTYPE[dtype]
    s.color_order, s.resize = _COLOR[color_order], _resize_number(resize)
    if normalization is not None and not normalization["in_graph"]:
        s.normalize = 1
        s.scale = float(normalization["scale"])
        s.mean[:] = [float(v) for v in normalization["mean"]]
        s.std[:] = [float(v) for v in normalization["std"]]
    return s


def _preprocess(lib, spec, frame, tensor_shape=None, tensor_dtype=None, fitted=True):
    """One srt_preprocess call on a BGR frame; returns (tensor or None, fitted BGR or None, Fit)."""
    if frame is None or getattr(frame, "ndim", 0) != 3 or frame.shape[2] != 3:
        raise ValueError("expected an HxWx3 BGR frame, got {}".format(
            None if frame is None else getattr(frame, "shape", type(frame))))
    f, keep = libswiftrt.frame_struct(frame)
    out = None if tensor_shape is None else np.empty(tensor_shape, dtype=tensor_dtype)
    image = np.empty((spec.height, spec.width, 3), dtype=np.uint8) if fitted else None
    fit = _new_fit(lib)
    _check(lib, lib.srt_preprocess(
        ctypes.byref(spec), ctypes.byref(f),
        None if out is None else out.ctypes.data, 0 if out is None else out.nbytes,
        None if image is None else image.ctypes.data, 0 if image is None else image.nbytes,
        ctypes.byref(fit)), "srt_preprocess")
    del keep  # the frame's array lived until here
    return out, image, Fit.from_core(fit)


def fit_frame(frame, size, mode="stretch"):
    """A BGR uint8 frame fitted to ``size`` = (height, width) by ``mode`` as the core fits it;
    returns (fitted frame, Fit). stretch: plain resize (aspect ratio may change); letterbox: keep
    aspect, pad with black; crop: keep aspect, scale to cover and cut the centre."""
    lib = _library()
    spec = _input_spec(lib, size, "NHWC", "uint8", "BGR", mode)
    _, fitted, fit = _preprocess(lib, spec, frame)
    return fitted, fit


class Preprocessor(object):
    """Frame -> input tensor, as the manifest's input (a runtime.manifest.Input) describes it,
    computed by the core (srt_preprocess)."""

    def __init__(self, spec, resize=None):
        self.spec = spec
        self.layout = spec.layout
        self.size = spec.size
        self.resize = resize or spec.resize or "stretch"
        _resize_number(self.resize)
        if spec.dtype not in _DTYPE:
            raise UserError("input {!r} has dtype {}: libswiftrt feeds frames as uint8 or float32".format(
                spec.name, spec.dtype))
        self.dtype = np.dtype(spec.dtype)
        self._lib = _library()
        self._spec = _input_spec(self._lib, self.size, spec.layout, spec.dtype, spec.color_order,
                                 self.resize, spec.normalization)
        height, width = self.size
        self._shape = (1, 3, height, width) if spec.layout == "NCHW" else (1, height, width, 3)

    def fit(self, frame):
        """Resize a BGR frame to the network size; returns (fitted BGR frame, Fit)."""
        _, fitted, fit = _preprocess(self._lib, self._spec, frame)
        return fitted, fit

    def to_tensor(self, fitted_bgr):
        """Fitted BGR uint8 frame -> contiguous batch-1 tensor of the input's dtype/layout."""
        return _preprocess(self._lib, self._spec, fitted_bgr, self._shape, self.dtype, fitted=False)[0]

    def __call__(self, frame):
        """BGR frame -> (tensor, fitted BGR frame, Fit)."""
        return _preprocess(self._lib, self._spec, frame, self._shape, self.dtype)
