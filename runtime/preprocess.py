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
    """How a frame was fitted to the network input (to map results back)."""

    __slots__ = ("mode", "scale_x", "scale_y", "pad_x", "pad_y", "crop_x", "crop_y")

    def __init__(self, mode, scale_x=1.0, scale_y=1.0, pad_x=0, pad_y=0, crop_x=0, crop_y=0):
        self.mode = mode
        self.scale_x, self.scale_y = scale_x, scale_y
        self.pad_x, self.pad_y = pad_x, pad_y
        self.crop_x, self.crop_y = crop_x, crop_y


def fit_frame(frame, size, mode="stretch"):
    """Resize ``frame`` to ``size`` = (height, width) by ``mode``; returns (image, Fit).

    stretch: plain resize (aspect ratio may change; what Cityscapes-trained models
    at 256x512 expect from 1024x2048 frames). letterbox: keep aspect, pad with
    black. crop: keep aspect, scale to cover and cut the centre.
    """
    height, width = size
    src_h, src_w = frame.shape[:2]
    if (src_h, src_w) == (height, width):
        return frame, Fit(mode)
    if mode == "stretch":
        out = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        return out, Fit(mode, width / float(src_w), height / float(src_h))
    if mode == "letterbox":
        scale = min(width / float(src_w), height / float(src_h))
        new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        out = np.zeros((height, width) + frame.shape[2:], dtype=frame.dtype)
        pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
        out[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
        return out, Fit(mode, scale, scale, pad_x=pad_x, pad_y=pad_y)
    if mode == "crop":
        scale = max(width / float(src_w), height / float(src_h))
        new_w, new_h = max(width, int(round(src_w * scale))), max(height, int(round(src_h * scale)))
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        crop_x, crop_y = (new_w - width) // 2, (new_h - height) // 2
        out = resized[crop_y:crop_y + height, crop_x:crop_x + width]
        return np.ascontiguousarray(out), Fit(mode, scale, scale, crop_x=crop_x, crop_y=crop_y)
    raise UserError("unknown resize mode {!r}; use one of {}".format(mode, ", ".join(RESIZE_MODES)))


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
