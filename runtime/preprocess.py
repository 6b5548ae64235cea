"""Turn a camera frame (OpenCV BGR uint8, any size) into the engine's input tensor.

Everything comes from the manifest's ``input`` block: size, layout, dtype, colour
order and whether normalization happens in the graph or here. The same code is
used by the streaming runtime, calibration and evaluation, so that all of them
see exactly the same pixels.
"""
import cv2
import numpy as np

from runtime.errors import UserError
from runtime.manifest import RESIZE_MODES  # the contract names them (and the schema)


class Fit(object):
    """How a frame was fitted to the network input (to map results back).

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


def fit_geometry(src_hw, size, mode="stretch"):
    """The Fit of a ``src_hw`` = (height, width) frame to ``size`` by ``mode`` (fit_frame's
    arithmetic, without an image: what maps and camera intrinsics are moved by)."""
    height, width = size
    src_h, src_w = src_hw
    if (src_h, src_w) == (height, width):
        return Fit(mode, src_hw=src_hw, resized_hw=src_hw, size=size)
    if mode == "stretch":
        return Fit(mode, width / float(src_w), height / float(src_h), src_hw=src_hw,
                   resized_hw=size, size=size)
    if mode == "letterbox":
        scale = min(width / float(src_w), height / float(src_h))
        new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
        return Fit(mode, scale, scale, pad_x=(width - new_w) // 2, pad_y=(height - new_h) // 2,
                   src_hw=src_hw, resized_hw=(new_h, new_w), size=size)
    if mode == "crop":
        scale = max(width / float(src_w), height / float(src_h))
        new_w, new_h = max(width, int(round(src_w * scale))), max(height, int(round(src_h * scale)))
        return Fit(mode, scale, scale, crop_x=(new_w - width) // 2, crop_y=(new_h - height) // 2,
                   src_hw=src_hw, resized_hw=(new_h, new_w), size=size)
    raise UserError("unknown resize mode {!r}; use one of {}".format(mode, ", ".join(RESIZE_MODES)))


def fit_frame(frame, size, mode="stretch"):
    """Resize ``frame`` to ``size`` = (height, width) by ``mode``; returns (image, Fit).

    stretch: plain resize (aspect ratio may change; what Cityscapes-trained models
    at 256x512 expect from 1024x2048 frames). letterbox: keep aspect, pad with
    black. crop: keep aspect, scale to cover and cut the centre.
    """
    fit = fit_geometry(frame.shape[:2], size, mode)
    if (fit.src_h, fit.src_w) == (fit.height, fit.width):
        return frame, fit
    resized = cv2.resize(frame, (fit.resized_w, fit.resized_h), interpolation=cv2.INTER_LINEAR)
    if mode == "letterbox":
        out = np.zeros((fit.height, fit.width) + frame.shape[2:], dtype=frame.dtype)
        out[fit.pad_y:fit.pad_y + fit.resized_h, fit.pad_x:fit.pad_x + fit.resized_w] = resized
        return out, fit
    if mode == "crop":
        out = resized[fit.crop_y:fit.crop_y + fit.height, fit.crop_x:fit.crop_x + fit.width]
        return np.ascontiguousarray(out), fit
    return resized, fit


def normalization_coefficients(norm):
    """(mul, add) per channel with (x * scale - mean) / std == x * mul + add (one fused op)."""
    std = np.asarray(norm["std"], dtype=np.float32)
    mul = (np.float32(norm["scale"]) / std).astype(np.float32)
    add = (-np.asarray(norm["mean"], dtype=np.float32) / std).astype(np.float32)
    return mul, add


class Preprocessor(object):
    """Frame -> input tensor, as the manifest's input (a runtime.manifest.Input) describes it."""

    def __init__(self, spec, resize=None):
        self.spec = spec
        self.layout = spec.layout
        self.size = spec.size
        self.resize = resize or spec.resize or "stretch"
        if self.resize not in RESIZE_MODES:
            raise UserError("unknown resize mode {!r}; use one of {}".format(
                self.resize, ", ".join(RESIZE_MODES)))
        self.dtype = np.dtype(spec.dtype)
        self.rgb = spec.color_order == "RGB"
        norm = spec.normalization
        self.host_normalize = not norm["in_graph"]
        if self.host_normalize:
            self.mul, self.add = normalization_coefficients(norm)

    def fit(self, frame):
        """Resize a BGR frame to the network size; returns (fitted BGR frame, Fit)."""
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError("expected an HxWx3 BGR frame, got {}".format(
                None if frame is None else frame.shape))
        return fit_frame(frame, self.size, self.resize)

    def to_tensor(self, fitted_bgr):
        """Fitted BGR uint8 frame -> contiguous batch-1 tensor of the input's dtype/layout."""
        image = fitted_bgr[:, :, ::-1] if self.rgb else fitted_bgr
        if self.host_normalize:
            image = image.astype(np.float32) * self.mul + self.add
        if self.layout == "NCHW":
            image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image[None], dtype=self.dtype)

    def __call__(self, frame):
        """BGR frame -> (tensor, fitted BGR frame, Fit)."""
        fitted, fit = self.fit(frame)
        return self.to_tensor(fitted), fitted, fit
